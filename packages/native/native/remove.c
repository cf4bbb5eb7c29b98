#define _GNU_SOURCE
/*
 * removeTrees(paths): `rm -rf` of each absolute path as ONE thread-pool job (issue 12: a
 * removal's ~7 ms of file work was one Node fs round trip per lstat/unlink/rmdir, through the
 * daemon's one JS thread). A missing path is fine. The walk is fd-relative:
 *   - a directory is opened with openat(O_DIRECTORY|O_NOFOLLOW), its entries read once, the
 *     non-directories unlinked as they are read (a symlink is unlinked, never followed);
 *   - a directory that is a mount root (statx's STATX_ATTR_MOUNT_ROOT where the kernel reports
 *     it, else a device other than its parent's) is NEVER descended into: it is left as it is,
 *     the walk goes on with the rest, and the job fails with EBUSY (syscall "rmdir", as rmdir(2)
 *     of a mount point fails) naming it. A top path that is a mount root is refused the same way;
 *   - at most MAX_OPEN directory fds are held: deeper down, the fd of the level MAX_OPEN above
 *     is closed and opened again through ".." of its child on the way back (checked to be the
 *     same directory by device and inode), so any depth is removed, also past PATH_MAX.
 * Every path is tried; the first failure is what the promise rejects with (errno, syscall,
 * path: the path the failing call was about).
 */
#include "common.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif
#define MAX_OPEN 256

typedef struct {
  int fd; /* -1 while closed (more than MAX_OPEN levels below) */
  dev_t dev;
  ino_t ino;
  char *name; /* in its parent; NULL for the top */
  char **dirs; /* the subdirectories (and entries of unknown type) still to do */
  size_t ndirs, next;
  int blocked; /* something below could not be removed: its rmdir is not tried */
} level_t;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char **paths;
  uint32_t npaths;
  level_t *stack;
  size_t depth, cap;
  const char *top; /* the path being removed */
  int err;
  const char *syscall;
  char *subject;
} rmjob_t;

static void rmjob_free(rmjob_t *j) {
  for (uint32_t i = 0; j->paths && i < j->npaths; i++) free(j->paths[i]);
  free(j->paths);
  free(j->stack);
  free(j->subject);
  free(j);
}

/* The path of `name` in the level `depth` (NULL: the level itself), for an error. */
static char *path_of(rmjob_t *j, size_t depth, const char *name) {
  size_t len = strlen(j->top) + (name ? strlen(name) + 1 : 0) + 1;
  for (size_t i = 1; i <= depth && i < j->depth; i++) len += strlen(j->stack[i].name) + 1;
  char *p = malloc(len), *s = p;
  if (!p) return NULL;
  s += sprintf(s, "%s", j->top);
  for (size_t i = 1; i <= depth && i < j->depth; i++) s += sprintf(s, "/%s", j->stack[i].name);
  if (name) sprintf(s, "/%s", name);
  return p;
}

/* Record a failure (the first one is the job's) and block the levels up to the top. */
static void fail(rmjob_t *j, const char *syscall, size_t depth, const char *name, int e) {
  for (size_t i = 0; i <= depth && i < j->depth; i++) j->stack[i].blocked = 1;
  if (j->err) return;
  j->err = e ? e : EIO;
  j->syscall = syscall;
  j->subject = path_of(j, depth, name);
}

static int mount_root(int fd, dev_t parent_dev, struct statx *stx) {
  if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_INO, stx) != 0) return -1;
  if (stx->stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) return (stx->stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  return makedev(stx->stx_dev_major, stx->stx_dev_minor) != parent_dev;
}

static void free_level(level_t *l) {
  if (l->fd >= 0) close(l->fd);
  for (size_t i = l->next; i < l->ndirs; i++) free(l->dirs[i]);
  free(l->dirs);
  free(l->name);
  memset(l, 0, sizeof *l);
  l->fd = -1;
}

/* Read the entries of the (new) top level: non-directories unlinked now, the rest kept. A
 * failure is recorded and blocks the level; the walk goes on. */
static void read_level(rmjob_t *j) {
  size_t d = j->depth - 1;
  level_t *l = &j->stack[d];
  int fd = dup(l->fd);
  DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
  size_t cap = 0;
  if (!dir) {
    if (fd >= 0) close(fd);
    fail(j, "opendir", d, NULL, errno);
    return;
  }
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(dir);
    if (!e) {
      if (errno) fail(j, "readdir", d, NULL, errno);
      break;
    }
    if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
    if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) {
      if (unlinkat(l->fd, e->d_name, 0) != 0 && errno != ENOENT) fail(j, "unlink", d, e->d_name, errno);
      continue;
    }
    if (l->ndirs == cap) {
      char **more = realloc(l->dirs, (cap = cap ? cap * 2 : 8) * sizeof *more);
      if (!more) break;
      l->dirs = more;
    }
    if (!(l->dirs[l->ndirs] = strdup(e->d_name))) break;
    l->ndirs++;
  }
  if (errno == ENOMEM) fail(j, "readdir", d, NULL, ENOMEM);
  closedir(dir);
}

/* Push the directory `fd` (already checked not to be a mount root) as a new level. */
static int push(rmjob_t *j, int fd, const struct statx *stx, char *name) {
  if (j->depth == j->cap) {
    level_t *more = realloc(j->stack, (j->cap = j->cap ? j->cap * 2 : 64) * sizeof *more);
    if (!more) {
      close(fd);
      free(name);
      fail(j, "openat", j->depth - 1, NULL, ENOMEM);
      return 0;
    }
    j->stack = more;
  }
  if (j->depth >= MAX_OPEN && j->stack[j->depth - MAX_OPEN].fd >= 0) {
    close(j->stack[j->depth - MAX_OPEN].fd);
    j->stack[j->depth - MAX_OPEN].fd = -1;
  }
  level_t *l = &j->stack[j->depth++];
  memset(l, 0, sizeof *l);
  l->fd = fd;
  l->dev = makedev(stx->stx_dev_major, stx->stx_dev_minor);
  l->ino = stx->stx_ino;
  l->name = name;
  read_level(j);
  return 1;
}

/* Done with the top level: back to its parent (opened again if it was closed), then rmdir it. */
static int pop(rmjob_t *j) {
  size_t d = j->depth - 1;
  level_t *l = &j->stack[d], *p = &j->stack[d - 1];
  int blocked = l->blocked;
  if (p->fd < 0) {
    struct stat st;
    int fd = openat(l->fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_dev != p->dev || st.st_ino != p->ino) {
      if (fd >= 0) close(fd);
      fail(j, "openat", d - 1, NULL, fd < 0 ? errno : ESTALE); /* the tree moved under the walk */
      return 0;
    }
    p->fd = fd;
  }
  char *name = l->name;
  l->name = NULL;
  free_level(l);
  j->depth--;
  if (!blocked && unlinkat(p->fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) fail(j, "rmdir", d - 1, name, errno);
  free(name);
  return 1;
}

/* The next subdirectory of the top level: unlinked when it is not one, else pushed. */
static int step(rmjob_t *j) {
  size_t d = j->depth - 1;
  level_t *l = &j->stack[d];
  char *name = l->dirs[l->next++];
  struct statx stx;
  if (unlinkat(l->fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT) return free(name), 1; /* empty: done */
  int fd = openat(l->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOTDIR || errno == ELOOP) { /* not a directory (DT_UNKNOWN) or a symlink: unlink it */
      if (unlinkat(l->fd, name, 0) != 0 && errno != ENOENT) fail(j, "unlink", d, name, errno);
    } else if (errno != ENOENT) {
      fail(j, "openat", d, name, errno);
    }
    return free(name), 1;
  }
  int root = mount_root(fd, l->dev, &stx);
  if (root != 0) {
    fail(j, root < 0 ? "statx" : "rmdir", d, name, root < 0 ? errno : EBUSY);
    close(fd);
    return free(name), 1;
  }
  return push(j, fd, &stx, name);
}

static void remove_tree(rmjob_t *j, const char *top) {
  struct statx stx;
  struct stat up;
  j->top = top;
  j->depth = 0;
  int fd = open(top, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOTDIR || errno == ELOOP) {
      if (unlink(top) != 0 && errno != ENOENT) fail(j, "unlink", 0, NULL, errno);
    } else if (errno != ENOENT) {
      fail(j, "open", 0, NULL, errno);
    }
    return;
  }
  int root = fstatat(fd, "..", &up, 0) != 0 ? -1 : mount_root(fd, up.st_dev, &stx);
  if (root != 0) {
    fail(j, root < 0 ? "statx" : "rmdir", 0, NULL, root < 0 ? errno : EBUSY);
    close(fd);
    return;
  }
  if (!push(j, fd, &stx, NULL)) return;
  while (j->depth > 1 || (j->depth == 1 && j->stack[0].next < j->stack[0].ndirs)) {
    level_t *l = &j->stack[j->depth - 1];
    if (l->next < l->ndirs ? !step(j) : !pop(j)) break;
  }
  int blocked = j->stack[0].blocked;
  while (j->depth > 0) free_level(&j->stack[--j->depth]);
  if (!blocked && rmdir(top) != 0 && errno != ENOENT) fail(j, "rmdir", 0, NULL, errno);
}

static void rm_execute(napi_env env, void *data) {
  rmjob_t *j = data;
  (void)env;
  for (uint32_t i = 0; i < j->npaths; i++) remove_tree(j, j->paths[i]);
}

static void rm_complete(napi_env env, napi_status status, void *data) {
  rmjob_t *j = data;
  settle_path_job(env, j->deferred, status, j->err, j->syscall ? j->syscall : "removeTrees", j->subject ? j->subject : "");
  napi_delete_async_work(env, j->work);
  rmjob_free(j);
}

/* removeTrees(paths: string[]) */
static napi_value js_remove_trees(napi_env env, napi_callback_info info) {
  static const char usage[] = "removeTrees(paths): paths an array of absolute paths (strings starting with '/')";
  napi_value argv[1], v;
  size_t argc = 1;
  bool is;
  int bad = 0;
  rmjob_t *j;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return throw_napi(env, "napi_get_cb_info");
  if (argc != 1 || napi_is_array(env, argv[0], &is) != napi_ok || !is) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  if (!(j = calloc(1, sizeof *j))) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  if (napi_get_array_length(env, argv[0], &j->npaths) != napi_ok) bad |= BAD_TYPE;
  if (!bad && j->npaths && !(j->paths = calloc(j->npaths, sizeof *j->paths))) bad |= BAD_NOMEM;
  for (uint32_t i = 0; !bad && i < j->npaths; i++) {
    if (napi_get_element(env, argv[0], i, &v) != napi_ok) bad |= BAD_TYPE;
    else j->paths[i] = arg_string(env, v, 0, &bad);
    if (!bad && j->paths[i][0] != '/') bad |= BAD_TYPE;
  }
  if (bad) {
    rmjob_free(j);
    throw_bad(env, bad, usage);
    return NULL;
  }
  napi_value p = queue_work(env, "berth_remove_trees", rm_execute, rm_complete, j, &j->work, &j->deferred);
  if (!p) rmjob_free(j);
  return p;
}

int remove_init(napi_env env, napi_value exports) {
  return export_fn(env, exports, "removeTrees", js_remove_trees);
}
