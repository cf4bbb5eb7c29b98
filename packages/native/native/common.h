/* Helpers shared by the addon's sources (berth.c, fs.c): argument parsing, errno rejections, thread-pool jobs. */
#ifndef BERTH_COMMON_H
#define BERTH_COMMON_H
#define NAPI_VERSION 8
#include <node_api.h>

/* A string argument (NULL for null/undefined when `optional`); sets *bad on a type error. */
char *arg_string(napi_env env, napi_value v, int optional, int *bad);
/* Reject `d` with an Error "<syscall> <subject>: <strerror>" carrying `errno` and `syscall`. */
void reject_errno(napi_env env, napi_deferred d, const char *syscall, const char *subject, int e);
/* Run `exec` on the thread pool and `done` back on the main thread; returns the promise. */
napi_value queue_work(napi_env env, const char *name, napi_async_execute_callback exec, napi_async_complete_callback done, void *data,
                      napi_async_work *work, napi_deferred *deferred);
/* Registers fs.c's functions on the exports. */
void fs_init(napi_env env, napi_value exports);
#endif
