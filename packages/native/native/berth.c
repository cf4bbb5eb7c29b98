#define _GNU_SOURCE
/*
 * berth's optional addon. A child process started by Node's child_process blocks the
 * daemon's event loop ~8-10 ms (libuv forks the whole Node process and waits for the exec),
 * so the hot paths use this instead:
 *   mount(2)/umount2(2) for the overlay root filesystems (no mount/umount binaries; here);
 *   run()/spawnMonitor(): posix_spawn of short commands and of daemonising monitors (spawn.c);
 *   openat2()/readlinkat() for docker cp inside a container's root (fs.c);
 *   setChildSubreaper()/pidfdOpen()/waitPidfd() for collecting orphaned children (proc.c);
 *   syscallAbis(): whether the kernel runs x32 and ia32 syscalls (abi.c);
 *   writeFiles(): a create's directories and atomic file writes as one thread-pool job (files.c);
 *   removeTrees(): a removal's `rm -rf`s as one thread-pool job, never into a mount (remove.c);
 *   mallocTrim(): malloc's free memory back to the kernel, for the idle collector (memory.c).
 * This file also holds the helpers the others share (common.h). Every napi call's status is
 * checked: a failure throws (synchronously) or rejects, never leaves a promise unsettled.
 * Everything blocking runs on libuv's thread pool; each call returns a promise that rejects
 * with an Error carrying `errno` (a number) and `syscall`. Built by native/build.mjs when a C
 * compiler and Node's headers are present; berth falls back otherwise (src/index.ts).
 */
#include "common.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int umount;
  char *source, *target, *fstype, *data;
  unsigned long flags;
  int err;
} job_t;

static void job_free(job_t *j) {
  free(j->source);
  free(j->target);
  free(j->fstype);
  free(j->data);
  free(j);
}

char *arg_string(napi_env env, napi_value v, int optional, int *bad) {
  napi_valuetype t;
  size_t len = 0, got = 0;
  char *s;
  if (napi_typeof(env, v, &t) != napi_ok) { *bad |= BAD_TYPE; return NULL; }
  if (optional && (t == napi_null || t == napi_undefined)) return NULL;
  if (t != napi_string) { *bad |= BAD_TYPE; return NULL; }
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) { *bad |= BAD_TYPE; return NULL; }
  s = malloc(len + 1);
  if (!s) { *bad |= BAD_NOMEM; return NULL; }
  if (napi_get_value_string_utf8(env, v, s, len + 1, &got) != napi_ok || got != len) { free(s); *bad |= BAD_TYPE; return NULL; }
  if (strlen(s) != len) { free(s); *bad |= BAD_TYPE; return NULL; } /* embedded NUL */
  return s;
}

void throw_bad(napi_env env, int bad, const char *usage) {
  if (bad & BAD_NOMEM) napi_throw_error(env, "ENOMEM", "out of memory copying the arguments");
  else napi_throw_type_error(env, NULL, usage);
}

napi_value throw_napi(napi_env env, const char *what) {
  bool pending = false;
  char buf[256];
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return NULL;
  snprintf(buf, sizeof buf, "native addon: %s failed", what);
  napi_throw_error(env, NULL, buf);
  return NULL;
}

napi_value errno_error(napi_env env, const char *syscall, const char *subject, int e) {
  char buf[512];
  napi_value msg, err, num, sys;
  snprintf(buf, sizeof buf, "%s %s: %s", syscall, subject, strerror(e));
  if (napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &msg) != napi_ok || napi_create_error(env, NULL, msg, &err) != napi_ok) return NULL;
  /* the message alone is still an error worth reporting */
  if (napi_create_int32(env, e, &num) == napi_ok) napi_set_named_property(env, err, "errno", num);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys) == napi_ok) napi_set_named_property(env, err, "syscall", sys);
  return err;
}

void reject_errno(napi_env env, napi_deferred d, const char *syscall, const char *subject, int e) {
  napi_value err = errno_error(env, syscall, subject, e);
  if (!err && napi_get_undefined(env, &err) != napi_ok) return; /* nothing can be made: the env is going away */
  napi_reject_deferred(env, d, err);
}

void settle_path_job(napi_env env, napi_deferred d, napi_status status, int e, const char *syscall, const char *path) {
  napi_value v, p;
  if (status == napi_ok && e == 0 && napi_get_undefined(env, &v) == napi_ok) {
    napi_resolve_deferred(env, d, v);
    return;
  }
  v = errno_error(env, syscall, path, status == napi_ok && e ? e : EIO);
  if (v && napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &p) == napi_ok) napi_set_named_property(env, v, "path", p);
  if (v || napi_get_undefined(env, &v) == napi_ok) napi_reject_deferred(env, d, v);
}

napi_value queue_work(napi_env env, const char *name, napi_async_execute_callback exec, napi_async_complete_callback done, void *data,
                      napi_async_work *work, napi_deferred *deferred) {
  napi_value promise, n, undef;
  if (napi_create_promise(env, deferred, &promise) != napi_ok) return throw_napi(env, "napi_create_promise");
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &n) != napi_ok || napi_create_async_work(env, NULL, n, exec, done, data, work) != napi_ok) {
    if (napi_get_undefined(env, &undef) == napi_ok) napi_resolve_deferred(env, *deferred, undef); /* frees the deferred */
    return throw_napi(env, "napi_create_async_work");
  }
  if (napi_queue_async_work(env, *work) != napi_ok) {
    napi_delete_async_work(env, *work);
    if (napi_get_undefined(env, &undef) == napi_ok) napi_resolve_deferred(env, *deferred, undef);
    return throw_napi(env, "napi_queue_async_work");
  }
  return promise;
}

int set_prop(napi_env env, napi_value obj, const char *name, napi_status made, const napi_value *v) {
  return made == napi_ok && napi_set_named_property(env, obj, name, *v) == napi_ok;
}

int export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value f;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &f) == napi_ok && napi_set_named_property(env, exports, name, f) == napi_ok;
}

static void execute(napi_env env, void *data) {
  job_t *j = data;
  int r = j->umount ? umount2(j->target, (int)j->flags) : mount(j->source, j->target, j->fstype, j->flags, j->data);
  j->err = r == 0 ? 0 : errno;
  (void)env;
}

static void complete(napi_env env, napi_status status, void *data) {
  job_t *j = data;
  napi_value undef;
  if (status == napi_ok && j->err == 0 && napi_get_undefined(env, &undef) == napi_ok) {
    napi_resolve_deferred(env, j->deferred, undef);
  } else {
    reject_errno(env, j->deferred, j->umount ? "umount2" : "mount", j->target, status == napi_ok && j->err ? j->err : EIO);
  }
  napi_delete_async_work(env, j->work);
  job_free(j);
}

static napi_value queue(napi_env env, job_t *j) {
  napi_value p = queue_work(env, j->umount ? "berth_umount2" : "berth_mount", execute, complete, j, &j->work, &j->deferred);
  if (!p) job_free(j);
  return p;
}

static int arg_flags(napi_env env, napi_value v, unsigned long *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || isnan(d) || d < 0 || d > 4294967295.0 || d != floor(d)) return 0;
  *out = (unsigned long)d;
  return 1;
}

/* The call's arguments (exactly `want` of them) and a fresh job; NULL after throwing. */
static job_t *new_job(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *usage) {
  size_t argc = want;
  job_t *j;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) { throw_napi(env, "napi_get_cb_info"); return NULL; }
  if (argc != want) { napi_throw_type_error(env, NULL, usage); return NULL; }
  j = calloc(1, sizeof *j);
  if (!j) napi_throw_error(env, "ENOMEM", "out of memory");
  return j;
}

/* mount(source, target, fstype, flags, data) */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  static const char usage[] = "mount: source, fstype and data are strings or null, target a string, flags an unsigned integer";
  napi_value argv[5];
  int bad = 0;
  job_t *j = new_job(env, info, 5, argv, "mount(source, target, fstype, flags, data)");
  if (!j) return NULL;
  j->source = arg_string(env, argv[0], 1, &bad);
  j->target = arg_string(env, argv[1], 0, &bad);
  j->fstype = arg_string(env, argv[2], 1, &bad);
  j->data = arg_string(env, argv[4], 1, &bad);
  if (!arg_flags(env, argv[3], &j->flags)) bad |= BAD_TYPE;
  if (bad) {
    job_free(j);
    throw_bad(env, bad, usage);
    return NULL;
  }
  return queue(env, j);
}

/* umount2(target, flags) */
static napi_value js_umount2(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int bad = 0;
  job_t *j = new_job(env, info, 2, argv, "umount2(target, flags)");
  if (!j) return NULL;
  j->umount = 1;
  j->target = arg_string(env, argv[0], 0, &bad);
  if (!arg_flags(env, argv[1], &j->flags)) bad |= BAD_TYPE;
  if (bad) {
    job_free(j);
    throw_bad(env, bad, "umount2: target is a string, flags an unsigned integer");
    return NULL;
  }
  return queue(env, j);
}

static napi_value init(napi_env env, napi_value exports) {
  if (!export_fn(env, exports, "mount", js_mount) || !export_fn(env, exports, "umount2", js_umount2) || !spawn_init(env, exports) ||
      !fs_init(env, exports) || !proc_init(env, exports) || !idmap_init(env, exports) || !abi_init(env, exports) ||
      !files_init(env, exports) || !memory_init(env, exports) || !remove_init(env, exports))
    return throw_napi(env, "registering the addon's functions");
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
