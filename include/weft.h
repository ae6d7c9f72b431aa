/* weft.h: the one header a user of weft includes. An M:N runtime for Linux:
 * fibers on one io_uring event loop per core, balanced by work stealing.
 *
 * Conventions, for every call:
 *  - Errors are negative errno values (-EINVAL, -ECANCELED, -ETIMEDOUT, ...).
 *    errno is never read or set on the caller's behalf. A fiber may move to
 *    another thread at any call that can switch, so never hold errno (or any
 *    thread-local address) across such a call.
 *  - A call that fails changes nothing, and ownership of what was passed
 *    stays with the caller.
 *  - Each declaration says where it may be called: any thread, or fibers
 *    only (those return -EPERM on a plain thread). */
#ifndef WEFT_H
#define WEFT_H

#include "weft/base.h"
#include "weft/runtime.h"
#include "weft/task.h"
#include "weft/parallel.h"
/* Coordination (futures, gather, cancellation, deadlines, groups): */
#include "weft/coord.h"
/* Channels and locks: */
#include "weft/chan.h"
#include "weft/sync.h"
/* Blocking pool, watchdog, dump: */
#include "weft/blocking.h"
#include "weft/debug.h"
/* Sockets, files, name resolution: */
#include "weft/io.h"
#include "weft/net.h"
#include "weft/file.h"

#endif /* WEFT_H */
