/*
 * berth_mount: mount(2) and umount2(2) for the image store's overlay root filesystems,
 * without starting the mount/umount binaries (a child process from the daemon costs ~8 ms
 * of blocked event loop per spawn). The syscalls run on libuv's thread pool; each call
 * returns a promise that rejects with an Error carrying `errno` (a number) and `syscall`.
 * Built by native/build.mjs when a C compiler and Node's headers are present; the image
 * store falls back to the binaries otherwise (src/native.ts).
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
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

/* A string argument (NULL for null/undefined when `optional`); sets *bad on a type error. */
static char *arg_string(napi_env env, napi_value v, int optional, int *bad) {
  napi_valuetype t;
  size_t len = 0;
  char *s;
  if (napi_typeof(env, v, &t) != napi_ok) { *bad = 1; return NULL; }
  if (optional && (t == napi_null || t == napi_undefined)) return NULL;
  if (t != napi_string) { *bad = 1; return NULL; }
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) { *bad = 1; return NULL; }
  s = malloc(len + 1);
  if (!s) { *bad = 1; return NULL; }
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  if (strlen(s) != len) { free(s); *bad = 1; return NULL; } /* embedded NUL */
  return s;
}

static void execute(napi_env env, void *data) {
  job_t *j = data;
  int r = j->umount ? umount2(j->target, (int)j->flags) : mount(j->source, j->target, j->fstype, j->flags, j->data);
  j->err = r == 0 ? 0 : errno;
  (void)env;
}

static void complete(napi_env env, napi_status status, void *data) {
  job_t *j = data;
  if (status == napi_ok && j->err == 0) {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, j->deferred, undef);
  } else {
    char buf[512];
    napi_value msg, err, num, sys;
    int e = status == napi_ok ? j->err : EIO;
    snprintf(buf, sizeof buf, "%s %s: %s", j->umount ? "umount2" : "mount", j->target, strerror(e));
    napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_create_int32(env, e, &num);
    napi_set_named_property(env, err, "errno", num);
    napi_create_string_utf8(env, j->umount ? "umount2" : "mount", NAPI_AUTO_LENGTH, &sys);
    napi_set_named_property(env, err, "syscall", sys);
    napi_reject_deferred(env, j->deferred, err);
  }
  napi_delete_async_work(env, j->work);
  job_free(j);
}

static napi_value queue(napi_env env, job_t *j) {
  napi_value promise, name;
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, j->umount ? "berth_umount2" : "berth_mount", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}

static int arg_flags(napi_env env, napi_value v, unsigned long *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d < 0 || d > 4294967295.0 || d != (double)(unsigned long)d) return 0;
  *out = (unsigned long)d;
  return 1;
}

/* The call's arguments (exactly `want` of them) and a fresh job; NULL after throwing. */
static job_t *new_job(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *usage) {
  size_t argc = want;
  job_t *j;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != want) { napi_throw_type_error(env, NULL, usage); return NULL; }
  j = calloc(1, sizeof *j);
  if (!j) napi_throw_error(env, NULL, "out of memory");
  return j;
}

/* mount(source, target, fstype, flags, data) */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int bad = 0;
  job_t *j = new_job(env, info, 5, argv, "mount(source, target, fstype, flags, data)");
  if (!j) return NULL;
  j->source = arg_string(env, argv[0], 1, &bad);
  j->target = arg_string(env, argv[1], 0, &bad);
  j->fstype = arg_string(env, argv[2], 1, &bad);
  j->data = arg_string(env, argv[4], 1, &bad);
  if (bad || !arg_flags(env, argv[3], &j->flags)) {
    job_free(j);
    napi_throw_type_error(env, NULL, "mount: source, fstype and data are strings or null, target a string, flags an unsigned integer");
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
  if (bad || !arg_flags(env, argv[1], &j->flags)) {
    job_free(j);
    napi_throw_type_error(env, NULL, "umount2: target is a string, flags an unsigned integer");
    return NULL;
  }
  return queue(env, j);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "mount", NAPI_AUTO_LENGTH, js_mount, NULL, &f);
  napi_set_named_property(env, exports, "mount", f);
  napi_create_function(env, "umount2", NAPI_AUTO_LENGTH, js_umount2, NULL, &f);
  napi_set_named_property(env, exports, "umount2", f);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
