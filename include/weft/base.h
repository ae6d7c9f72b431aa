/* weft/base.h: what every part of the public API shares: the export macro,
 * the version, and the handle and function types. Included by weft.h. */
#ifndef WEFT_BASE_H
#define WEFT_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define WEFT_EXTERN_C_BEGIN extern "C" {
#define WEFT_EXTERN_C_END }
#else
#define WEFT_EXTERN_C_BEGIN
#define WEFT_EXTERN_C_END
#endif

#if defined(WEFT_BUILDING) && defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

/* A task handle. It is a value (copy it freely), never a pointer: a handle
 * that outlived its task is recognised and refused with -EINVAL, even after
 * the runtime reused the task's memory. The zero handle is "no task". */
typedef struct weft_task {
    uint64_t id_;
} weft_task_t;

#define WEFT_TASK_NONE ((weft_task_t){0})

/* The body of a task. It returns a non-negative result or a negative errno
 * value, as every weft call does; whoever joins the task receives it. A
 * pointer result is returned cast to intptr_t (user pointers are positive on
 * the Linux ABIs weft supports). */
typedef intptr_t (*weft_fn)(void *arg);

#endif /* WEFT_BASE_H */
