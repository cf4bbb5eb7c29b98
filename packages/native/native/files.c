#define _GNU_SOURCE
/*
 * writeFiles(): a container create's file work as ONE thread-pool job (issue 18). Node's own
 * fs calls are a thread-pool round trip each (a promise, a wake-up of a pool thread, a
 * completion back on the daemon's one JS thread); a create made ~20 of them — mkdirs, then per
 * file open, fchmod, write, fsync, close, rename. Here they run one after the other on one pool
 * thread and the JS thread hears once:
 *   1. each of `dirs` made with one mkdir(2) and its mode (a missing parent made too, like
 *      mkdir -p; an existing one fails with EEXIST unless its flags say DIR_EXIST_OK);
 *   2. each of `files` written to a temp file `.tmp-<name>.<8 hex>` in `dir` (O_EXCL, then
 *      fchmod to `mode` whatever the umask), fsync'd unless WF_NO_FSYNC — every temp before
 *      the first rename;
 *   3. the temps renamed over the files, in the given order; WF_SYNC_DIR: `dir` fsync'd after
 *      (an error from that fsync is ignored, as some filesystems refuse it).
 * The same steps and durability as core's atomic-write.ts JS path. The first failure stops the
 * job: the temps not yet renamed are removed (no half-written file is ever left), directories
 * made are kept (the caller decides), and the promise rejects with `errno`, `syscall` and
 * `path` (the path the failing call was given).
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DIR_EXIST_OK 1
#define WF_NO_FSYNC 1
#define WF_SYNC_DIR 2

typedef struct {
  char *path;
  mode_t mode;
  int flags;
} dirop_t;

typedef struct {
  char *path; /* dir/name */
  char *tmp;  /* dir/.tmp-name.XXXXXXXX, NULL until created */
  char *data;
  size_t len;
} fileop_t;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  dirop_t *dirs;
  uint32_t ndirs;
  char *dir;
  fileop_t *files;
  uint32_t nfiles;
  mode_t mode;
  int flags;
  int err;
  const char *syscall;
  char *subject;
} wfjob_t;

static void wfjob_free(wfjob_t *j) {
  for (uint32_t i = 0; j->dirs && i < j->ndirs; i++) free(j->dirs[i].path);
  for (uint32_t i = 0; j->files && i < j->nfiles; i++) {
    free(j->files[i].path);
    free(j->files[i].tmp);
    free(j->files[i].data);
  }
  free(j->dirs);
  free(j->files);
  free(j->dir);
  free(j->subject);
  free(j);
}

/* Record the first failure (the job stops there); 0 so that callers can `return fail(...)`. */
static int fail(wfjob_t *j, const char *syscall, const char *path, int e) {
  j->err = e ? e : EIO;
  j->syscall = syscall;
  j->subject = strdup(path);
  return 0;
}

/* mkdir -p of the parents of `path` (each with `mode`); 0 or an errno. */
static int make_parents(const char *path, mode_t mode) {
  char *p = strdup(path);
  int e = 0;
  if (!p) return ENOMEM;
  for (char *s = p + 1; *s && !e; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(p, mode) != 0 && errno != EEXIST) e = errno;
    *s = '/';
  }
  free(p);
  return e;
}

static int make_dir(wfjob_t *j, const dirop_t *d) {
  int r = mkdir(d->path, d->mode);
  if (r != 0 && errno == ENOENT) {
    int e = make_parents(d->path, d->mode);
    if (e) return fail(j, "mkdir", d->path, e);
    r = mkdir(d->path, d->mode);
  }
  if (r == 0 || (errno == EEXIST && (d->flags & DIR_EXIST_OK))) return 1;
  return fail(j, "mkdir", d->path, errno);
}

static int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/* A fresh temp file beside f->path (O_EXCL: never someone else's), its name kept in f->tmp. */
static int open_temp(wfjob_t *j, fileop_t *f, const char *name) {
  size_t size = strlen(j->dir) + strlen(name) + 32;
  char *tmp = malloc(size);
  if (!tmp) return fail(j, "open", f->path, ENOMEM) - 1;
  for (int attempt = 0; attempt < 16; attempt++) {
    unsigned char r[4];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
      /* no entropy yet (early boot): O_EXCL keeps any name safe, this one just may be taken */
      uint32_t x = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 8) ^ (uint32_t)attempt * 2654435761u ^ (uint32_t)(uintptr_t)f;
      memcpy(r, &x, sizeof r);
    }
    snprintf(tmp, size, "%s/.tmp-%s.%02x%02x%02x%02x", j->dir, name, r[0], r[1], r[2], r[3]);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, j->mode);
    if (fd >= 0) {
      f->tmp = tmp;
      return fd;
    }
    if (errno != EEXIST) {
      fail(j, "open", tmp, errno);
      free(tmp);
      return -1;
    }
  }
  fail(j, "open", tmp, EEXIST);
  free(tmp);
  return -1;
}

static int write_temp(wfjob_t *j, fileop_t *f, const char *name) {
  int fd = open_temp(j, f, name), e;
  if (fd < 0) return 0;
  if (fchmod(fd, j->mode) != 0) e = errno, fail(j, "fchmod", f->tmp, e);
  else if ((e = write_all(fd, f->data, f->len)) != 0) fail(j, "write", f->tmp, e);
  else if (!(j->flags & WF_NO_FSYNC) && fsync(fd) != 0) e = errno, fail(j, "fsync", f->tmp, e);
  if (close(fd) != 0 && errno != EINTR && !j->err) fail(j, "close", f->tmp, errno);
  return !j->err;
}

static void remove_temps(wfjob_t *j, uint32_t from) {
  for (uint32_t i = from; i < j->nfiles; i++)
    if (j->files[i].tmp) unlink(j->files[i].tmp);
}

static void wf_execute(napi_env env, void *data) {
  wfjob_t *j = data;
  (void)env;
  for (uint32_t i = 0; i < j->ndirs; i++)
    if (!make_dir(j, &j->dirs[i])) return;
  for (uint32_t i = 0; i < j->nfiles; i++) {
    fileop_t *f = &j->files[i];
    if (!write_temp(j, f, f->path + strlen(j->dir) + 1)) {
      remove_temps(j, 0);
      return;
    }
  }
  for (uint32_t i = 0; i < j->nfiles; i++) {
    if (rename(j->files[i].tmp, j->files[i].path) != 0) {
      fail(j, "rename", j->files[i].tmp, errno);
      remove_temps(j, i);
      return;
    }
  }
  if (j->nfiles > 0 && (j->flags & WF_SYNC_DIR)) {
    int fd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      (void)fsync(fd); /* some filesystems refuse fsync on a directory; the renames are atomic all the same */
      close(fd);
    }
  }
}

static void wf_complete(napi_env env, napi_status status, void *data) {
  wfjob_t *j = data;
  settle_path_job(env, j->deferred, status, j->err, j->syscall ? j->syscall : "writeFiles", j->subject ? j->subject : j->dir);
  napi_delete_async_work(env, j->work);
  wfjob_free(j);
}

static int arg_u32(napi_env env, napi_value v, uint32_t max, uint32_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || isnan(d) || d < 0 || d > (double)max || d != floor(d)) return 0;
  *out = (uint32_t)d;
  return 1;
}

/* element i of array `a` as an array of exactly `n` items into `out`; 0 when it is not one */
static int tuple(napi_env env, napi_value a, uint32_t i, uint32_t n, napi_value *out) {
  napi_value t;
  bool is;
  uint32_t len;
  if (napi_get_element(env, a, i, &t) != napi_ok || napi_is_array(env, t, &is) != napi_ok || !is) return 0;
  if (napi_get_array_length(env, t, &len) != napi_ok || len != n) return 0;
  for (uint32_t k = 0; k < n; k++)
    if (napi_get_element(env, t, k, &out[k]) != napi_ok) return 0;
  return 1;
}

/* A file's data (a string, as UTF-8, or a Uint8Array/Buffer), copied: the JS value may change while the job runs. */
static int arg_data(napi_env env, napi_value v, fileop_t *f, int *bad) {
  bool typed;
  if (napi_is_typedarray(env, v, &typed) == napi_ok && typed) {
    napi_typedarray_type type;
    size_t len;
    void *p;
    if (napi_get_typedarray_info(env, v, &type, &len, &p, NULL, NULL) != napi_ok || type != napi_uint8_array) return *bad |= BAD_TYPE, 0;
    f->data = malloc(len ? len : 1);
    if (!f->data) return *bad |= BAD_NOMEM, 0;
    if (len) memcpy(f->data, p, len);
    f->len = len;
    return 1;
  }
  size_t len = 0, got = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return *bad |= BAD_TYPE, 0;
  f->data = malloc(len + 1);
  if (!f->data) return *bad |= BAD_NOMEM, 0;
  if (napi_get_value_string_utf8(env, v, f->data, len + 1, &got) != napi_ok || got != len) return *bad |= BAD_TYPE, 0;
  f->len = len;
  return 1;
}

static char *join_path(const char *dir, const char *name, int *bad) {
  size_t size = strlen(dir) + strlen(name) + 2;
  char *p = malloc(size);
  if (!p) *bad |= BAD_NOMEM;
  else snprintf(p, size, "%s/%s", dir, name);
  return p;
}

/* writeFiles(dirs: [path, mode, flags][], dir, files: [name, data][], mode, flags) */
static napi_value js_write_files(napi_env env, napi_callback_info info) {
  static const char usage[] =
      "writeFiles(dirs, dir, files, mode, flags): dirs an array of [path, mode, flags], dir a string, files an array of [name, data] "
      "(name a string without '/', data a string or Uint8Array), mode a file mode, flags an unsigned integer";
  napi_value argv[5], t[3];
  size_t argc = 5;
  uint32_t u;
  bool is;
  int bad = 0;
  wfjob_t *j;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return throw_napi(env, "napi_get_cb_info");
  if (argc != 5) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  j->dir = arg_string(env, argv[1], 0, &bad);
  if (!arg_u32(env, argv[3], 07777, &u)) bad |= BAD_TYPE;
  j->mode = (mode_t)u;
  if (!arg_u32(env, argv[4], WF_NO_FSYNC | WF_SYNC_DIR, &u)) bad |= BAD_TYPE;
  j->flags = (int)u;
  if (!bad && (napi_is_array(env, argv[0], &is) != napi_ok || !is || napi_get_array_length(env, argv[0], &j->ndirs) != napi_ok)) bad |= BAD_TYPE;
  if (!bad && (napi_is_array(env, argv[2], &is) != napi_ok || !is || napi_get_array_length(env, argv[2], &j->nfiles) != napi_ok)) bad |= BAD_TYPE;
  if (!bad && j->nfiles > 0 && !*j->dir) bad |= BAD_TYPE;
  if (!bad && ((j->ndirs && !(j->dirs = calloc(j->ndirs, sizeof *j->dirs))) || (j->nfiles && !(j->files = calloc(j->nfiles, sizeof *j->files))))) bad |= BAD_NOMEM;
  for (uint32_t i = 0; !bad && i < j->ndirs; i++) {
    if (!tuple(env, argv[0], i, 3, t) || !arg_u32(env, t[1], 07777, &u)) {
      bad |= BAD_TYPE;
      break;
    }
    j->dirs[i].mode = (mode_t)u;
    if (!arg_u32(env, t[2], DIR_EXIST_OK, &u)) bad |= BAD_TYPE;
    j->dirs[i].flags = (int)u;
    j->dirs[i].path = arg_string(env, t[0], 0, &bad);
    if (!bad && !*j->dirs[i].path) bad |= BAD_TYPE;
  }
  for (uint32_t i = 0; !bad && i < j->nfiles; i++) {
    char *name;
    if (!tuple(env, argv[2], i, 2, t)) {
      bad |= BAD_TYPE;
      break;
    }
    name = arg_string(env, t[0], 0, &bad);
    if (name && (!*name || strchr(name, '/'))) bad |= BAD_TYPE;
    if (!bad) j->files[i].path = join_path(j->dir, name, &bad);
    free(name);
    if (!bad) arg_data(env, t[1], &j->files[i], &bad);
  }
  if (bad) {
    wfjob_free(j);
    throw_bad(env, bad, usage);
    return NULL;
  }
  napi_value p = queue_work(env, "berth_write_files", wf_execute, wf_complete, j, &j->work, &j->deferred);
  if (!p) wfjob_free(j);
  return p;
}

int files_init(napi_env env, napi_value exports) {
  return export_fn(env, exports, "writeFiles", js_write_files);
}
