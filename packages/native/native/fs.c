#define _GNU_SOURCE
/*
 * openat2(2) and readlinkat(2) for paths inside a container's root (docker cp): the daemon
 * walks a container path one component at a time from a directory fd it holds, and each step
 * must be a single syscall the container cannot race (RESOLVE_BENEATH, no symlinks, no magic
 * links: a component is opened where it is, or refused). O_CLOEXEC is always added. Both run on
 * the thread pool and reject with `errno` and `syscall` like the rest of the addon.
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int readlink; /* 0: openat2, 1: readlinkat */
  int dirfd;
  char *path;
  struct open_how how;
  int fd;
  char *link;
  int err;
} fsjob_t;

static void fsjob_free(fsjob_t *j) {
  free(j->path);
  free(j->link);
  free(j);
}

static void fs_execute(napi_env env, void *data) {
  fsjob_t *j = data;
  (void)env;
  if (!j->readlink) {
    long fd = syscall(SYS_openat2, j->dirfd, j->path, &j->how, sizeof j->how);
    j->fd = (int)fd;
    j->err = fd < 0 ? errno : 0;
    return;
  }
  j->link = malloc(PATH_MAX + 1);
  if (!j->link) {
    j->err = ENOMEM;
    return;
  }
  ssize_t n = readlinkat(j->dirfd, j->path, j->link, PATH_MAX + 1);
  if (n < 0) j->err = errno;
  else if (n > PATH_MAX) j->err = ENAMETOOLONG;
  else j->link[n] = '\0';
}

static void fs_complete(napi_env env, napi_status status, void *data) {
  fsjob_t *j = data;
  const char *syscall_name = j->readlink ? "readlinkat" : "openat2";
  if (status != napi_ok) {
    /* cancelled: nothing reaches JavaScript, so an fd opened meanwhile is closed here */
    if (!j->readlink && j->fd >= 0) close(j->fd);
    reject_errno(env, j->deferred, syscall_name, j->path, EIO);
  } else if (j->err != 0) {
    reject_errno(env, j->deferred, syscall_name, j->path, j->err);
  } else {
    napi_value v;
    napi_status made = j->readlink ? napi_create_string_utf8(env, j->link, NAPI_AUTO_LENGTH, &v) : napi_create_int32(env, j->fd, &v);
    if (made == napi_ok) {
      napi_resolve_deferred(env, j->deferred, v);
    } else {
      /* nothing reaches JavaScript: close what was opened, and say why */
      if (!j->readlink && j->fd >= 0) close(j->fd);
      reject_errno(env, j->deferred, syscall_name, j->path, ENOMEM);
    }
  }
  napi_delete_async_work(env, j->work);
  fsjob_free(j);
}

static napi_value fs_queue(napi_env env, const char *name, fsjob_t *j) {
  napi_value p = queue_work(env, name, fs_execute, fs_complete, j, &j->work, &j->deferred);
  if (!p) fsjob_free(j);
  return p;
}

static int arg_uint(napi_env env, napi_value v, uint64_t max, uint64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || isnan(d) || d < 0 || d > (double)max || d != floor(d)) return 0;
  *out = (uint64_t)d;
  return 1;
}

/* The dirfd and path arguments of both calls and a fresh job; NULL after throwing. */
static fsjob_t *fs_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *usage) {
  size_t argc = want;
  uint64_t dirfd;
  int bad = 0;
  fsjob_t *j;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    throw_napi(env, "napi_get_cb_info");
    return NULL;
  }
  if (argc != want || !arg_uint(env, argv[0], INT_MAX, &dirfd)) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  j->dirfd = (int)dirfd;
  j->fd = -1;
  j->path = arg_string(env, argv[1], 0, &bad);
  if (bad) {
    fsjob_free(j);
    throw_bad(env, bad, usage);
    return NULL;
  }
  return j;
}

/* openat2(dirfd, path, flags, mode, resolve) → fd */
static napi_value js_openat2(napi_env env, napi_callback_info info) {
  static const char usage[] = "openat2(dirfd, path, flags, mode, resolve): dirfd a non-negative integer, path a string, flags, mode and resolve unsigned integers";
  napi_value argv[5];
  uint64_t flags, mode, resolve;
  fsjob_t *j = fs_args(env, info, 5, argv, usage);
  if (!j) return NULL;
  if (!arg_uint(env, argv[2], UINT32_MAX, &flags) || !arg_uint(env, argv[3], 07777, &mode) || !arg_uint(env, argv[4], UINT32_MAX, &resolve)) {
    fsjob_free(j);
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  j->how.flags = flags | O_CLOEXEC;
  /* the kernel refuses a mode without O_CREAT/O_TMPFILE */
  j->how.mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0;
  j->how.resolve = resolve;
  return fs_queue(env, "berth_openat2", j);
}

/* readlinkat(dirfd, path) → the link's target ("" path: the symlink dirfd itself was opened with O_PATH) */
static napi_value js_readlinkat(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  fsjob_t *j = fs_args(env, info, 2, argv, "readlinkat(dirfd, path): dirfd a non-negative integer, path a string");
  if (!j) return NULL;
  j->readlink = 1;
  return fs_queue(env, "berth_readlinkat", j);
}

int fs_init(napi_env env, napi_value exports) {
  return export_fn(env, exports, "openat2", js_openat2) && export_fn(env, exports, "readlinkat", js_readlinkat);
}
