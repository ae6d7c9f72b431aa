/* sched/qlink.h: the intrusive link every queue of ready tasks threads
 * through, and a plain FIFO list of them. A task embeds one weft__qlink; it
 * is in at most one queue at a time. */
#ifndef WEFT_SCHED_QLINK_H
#define WEFT_SCHED_QLINK_H

#include <stddef.h>

struct weft__qlink {
    struct weft__qlink *next;
};

/* A FIFO list owned by one thread; no synchronisation. */
struct weft__qlist {
    struct weft__qlink *head;
    struct weft__qlink *tail;
    size_t len;
};

static inline void weft__qlist_init(struct weft__qlist *l)
{
    l->head = l->tail = NULL;
    l->len = 0;
}

static inline void weft__qlist_push(struct weft__qlist *l,
                                    struct weft__qlink *item)
{
    item->next = NULL;
    if (l->tail)
        l->tail->next = item;
    else
        l->head = item;
    l->tail = item;
    l->len++;
}

static inline struct weft__qlink *weft__qlist_pop(struct weft__qlist *l)
{
    struct weft__qlink *item = l->head;
    if (item) {
        l->head = item->next;
        if (!l->head)
            l->tail = NULL;
        l->len--;
        item->next = NULL;
    }
    return item;
}

/* Append all of src to dst, leaving src empty. */
static inline void weft__qlist_append(struct weft__qlist *dst,
                                      struct weft__qlist *src)
{
    if (!src->head)
        return;
    if (dst->tail)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    dst->len += src->len;
    weft__qlist_init(src);
}

#endif /* WEFT_SCHED_QLINK_H */
