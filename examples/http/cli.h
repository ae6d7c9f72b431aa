/* examples/http/cli.h: what the network examples' programs (weft-http,
 * weft-echo, weft-fetch) share around weft itself: numbers on the command
 * line, the fd limit, and waiting for SIGINT/SIGTERM in a fiber. Entry
 * points: cli_signals_block, cli_signals_wait. Must never install a signal
 * handler (cli.c says why). */
#ifndef WEFT_EXAMPLES_HTTP_CLI_H
#define WEFT_EXAMPLES_HTTP_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* A decimal number in [min, max]: true and *out, or false. */
bool cli_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Raise the soft limit on open fds to the hard one (servers and clients
 * with thousands of connections need it). Returns the new limit. */
uint64_t cli_raise_fd_limit(void);

/* Block SIGINT and SIGTERM and return a signalfd that reports them (or
 * -errno). Call on the main thread before weft_run / weft_start: the
 * worker threads inherit the mask, so no thread is interrupted and the
 * signals wait in the fd. */
int cli_signals_block(void);

/* In a fiber: wait until a signal arrives on fd (from cli_signals_block)
 * and return its number, or -errno (-ECANCELED if the task is cancelled).
 * The worker runs other fibers meanwhile. */
int cli_signals_wait(int fd);

#endif /* WEFT_EXAMPLES_HTTP_CLI_H */
