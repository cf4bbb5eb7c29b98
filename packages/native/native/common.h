/* Helpers shared by the addon's sources (berth.c, fs.c): argument parsing, errno rejections, thread-pool jobs. */
#ifndef BERTH_COMMON_H
#define BERTH_COMMON_H
#define NAPI_VERSION 8
#include <node_api.h>

/* What went wrong with an argument (bits of *bad): its type, or memory to copy it. */
#define BAD_TYPE 1
#define BAD_NOMEM 2
/* A string argument (NULL for null/undefined when `optional`); ORs BAD_TYPE or BAD_NOMEM into *bad. */
char *arg_string(napi_env env, napi_value v, int optional, int *bad);
/* Throw for a bad argument: "out of memory" (BAD_NOMEM) or a TypeError with `usage`. */
void throw_bad(napi_env env, int bad, const char *usage);
/* Throw an Error unless one is pending (a napi call failed; `what` names it). NULL. */
napi_value throw_napi(napi_env env, const char *what);
/* An Error "<syscall> <subject>: <strerror>" carrying `errno` and `syscall`; NULL when even that fails. */
napi_value errno_error(napi_env env, const char *syscall, const char *subject, int e);
/* Reject `d` with errno_error (or undefined when it cannot be made). */
void reject_errno(napi_env env, napi_deferred d, const char *syscall, const char *subject, int e);
/* A path job's end: resolve undefined when `status` is ok and `e` 0, else reject with
 * errno_error (EIO when the job itself failed) carrying `path` too. */
void settle_path_job(napi_env env, napi_deferred d, napi_status status, int e, const char *syscall, const char *path);
/* Run `exec` on the thread pool and `done` back on the main thread; returns the promise, or
 * NULL after throwing (then `done` never runs and the caller frees `data`). */
napi_value queue_work(napi_env env, const char *name, napi_async_execute_callback exec, napi_async_complete_callback done, void *data,
                      napi_async_work *work, napi_deferred *deferred);
/* Set `obj[name] = *v` (a pointer: `made` is the call that fills it, evaluated first); 0 when a napi call failed. */
int set_prop(napi_env env, napi_value obj, const char *name, napi_status made, const napi_value *v);
/* Register spawn.c's, fs.c's and proc.c's functions on the exports; 0 when a napi call failed. */
int spawn_init(napi_env env, napi_value exports);
int fs_init(napi_env env, napi_value exports);
int proc_init(napi_env env, napi_value exports);
int idmap_init(napi_env env, napi_value exports);
int abi_init(napi_env env, napi_value exports);
int files_init(napi_env env, napi_value exports);
int memory_init(napi_env env, napi_value exports);
int remove_init(napi_env env, napi_value exports);
/* exports[name] = a function calling `cb`; 0 when a napi call failed. */
int export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb);
#endif
