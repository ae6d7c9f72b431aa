/* sched/deadline.c: deadline scopes (asyncio.timeout, Trio's cancel scopes
 * with a deadline). Entry points: weft_deadline_push, _push_after, _pop,
 * _expired, _current.
 *
 * A task's deadline (task.deadline) is its innermost scope's, already
 * combined with every outer one: push stores min(outer, requested) and
 * keeps the outer value in the caller's scope struct; pop puts it back.
 * The wait protocol (sched/wait.c) applies task.deadline to every
 * WAIT_DIRECT wait, and WAIT_CUSTOM owners ask weft__wait_deadline, so a
 * scope reaches every kind of wait without knowing about any.
 *
 * Pops must come in reverse order of pushes. Each push takes the next
 * depth of the task's counter (task.deadline_depth) and records it with
 * the task's handle; pop accepts only the scope holding the current depth
 * of the calling task's current life.
 * Must never: extend a deadline, or let a wrong pop change anything. Only
 * the task itself touches its deadline fields, so none of this is atomic. */
#include <errno.h>

#include "runtime/runtime.h"
#include "sched/sched.h"

#define SCOPE_PUSHED 0x53434f50u /* "SCOP" */
#define SCOPE_POPPED 0x504f5044u /* "POPD" */

static struct weft__task *self_task(const char *fn)
{
    struct weft__task *t = weft__task_self(weft__worker_self());
    if (!t)
        weft__misuse(fn, "called from a plain thread, not a fiber");
    return t;
}

static uint64_t handle_of(struct weft__task *t)
{
    uint64_t st = atomic_load_explicit(&t->state, memory_order_relaxed);
    return weft__task_handle(t, (uint32_t)(st >> 32));
}

WEFT_API int weft_deadline_push(weft_deadline_t *scope, uint64_t deadline_ns)
{
    struct weft__task *t = self_task("weft_deadline_push");
    if (!t)
        return -EPERM;
    if (!scope) {
        weft__misuse("weft_deadline_push", "scope is NULL");
        return -EINVAL;
    }
    scope->task_ = handle_of(t);
    scope->outer_ = t->deadline;
    scope->deadline_ = deadline_ns;
    scope->depth_ = ++t->deadline_depth;
    scope->state_ = SCOPE_PUSHED;
    if (deadline_ns < t->deadline)
        t->deadline = deadline_ns;
    return 0;
}

WEFT_API int weft_deadline_push_after(weft_deadline_t *scope,
                                      int64_t timeout_ns)
{
    if (!self_task("weft_deadline_push_after"))
        return -EPERM;
    if (timeout_ns < 0) {
        weft__misuse("weft_deadline_push_after", "negative timeout");
        return -EINVAL;
    }
    uint64_t now = weft_now_ns();
    uint64_t ns = (uint64_t)timeout_ns;
    /* Saturate below WEFT_NO_DEADLINE: a huge timeout is a far deadline,
     * still a deadline. */
    uint64_t deadline = ns >= UINT64_MAX - 1 - now ? UINT64_MAX - 1 : now + ns;
    return weft_deadline_push(scope, deadline);
}

WEFT_API int weft_deadline_pop(weft_deadline_t *scope)
{
    struct weft__task *t = self_task("weft_deadline_pop");
    if (!t)
        return -EPERM;
    if (!scope || scope->state_ != SCOPE_PUSHED ||
        scope->task_ != handle_of(t) || scope->depth_ != t->deadline_depth) {
        weft__misuse("weft_deadline_pop",
                     "not the calling task's innermost deadline scope "
                     "(popped out of order or twice, never pushed, or "
                     "pushed by another task)");
        return -EINVAL;
    }
    t->deadline = scope->outer_;
    t->deadline_depth--;
    scope->state_ = SCOPE_POPPED;
    return 0;
}

WEFT_API int weft_deadline_expired(const weft_deadline_t *scope)
{
    if (!scope ||
        (scope->state_ != SCOPE_PUSHED && scope->state_ != SCOPE_POPPED)) {
        weft__misuse("weft_deadline_expired", "scope was never pushed");
        return -EINVAL;
    }
    return weft_now_ns() >= scope->deadline_;
}

WEFT_API uint64_t weft_deadline_current(void)
{
    struct weft__task *t = weft__task_self(weft__worker_self());
    return t ? t->deadline : UINT64_MAX;
}
