#define _GNU_SOURCE
/*
 * Idmapped bind mounts (Linux ≥ 5.12; overlayfs accepts idmapped layers from 5.19):
 * open_tree(OPEN_TREE_CLONE) detaches a copy of the mount at `source`, mount_setattr(
 * MOUNT_ATTR_IDMAP) gives it the ID mapping of the user namespace `usernsFd` names, and
 * move_mount attaches it at `target`. Files then appear owned by the namespace's mapping of
 * their on-disk IDs, and files created through the mount are stored with the IDs mapped back:
 * a user namespace's root can use a tree owned by the host's root without any chown.
 * Synchronous (three syscalls). Errors are thrown with `errno` and `syscall`; the detached
 * tree's fd is closed on every path.
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif

struct berth_mount_attr {
  uint64_t attr_set;
  uint64_t attr_clr;
  uint64_t propagation;
  uint64_t userns_fd;
};

static napi_value fail(napi_env env, const char *syscall, const char *subject, int e) {
  napi_value err = errno_error(env, syscall, subject, e);
  if (err) napi_throw(env, err);
  else throw_napi(env, syscall);
  return NULL;
}

/* idmapBind(source: string, target: string, usernsFd: number): void */
static napi_value js_idmap_bind(napi_env env, napi_callback_info info) {
  static const char *usage = "idmapBind(source, target, usernsFd): source and target are strings, usernsFd a file descriptor";
  size_t argc = 3;
  napi_value argv[3], undef, result = NULL;
  double fd_d;
  int bad = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return throw_napi(env, "napi_get_cb_info");
  if (argc != 3 || napi_get_value_double(env, argv[2], &fd_d) != napi_ok) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  if (isnan(fd_d) || fd_d < 0 || fd_d > 2147483647.0 || fd_d != floor(fd_d)) {
    napi_throw_range_error(env, NULL, usage);
    return NULL;
  }
  char *source = arg_string(env, argv[0], 0, &bad);
  char *target = arg_string(env, argv[1], 0, &bad);
  if (bad) {
    free(source);
    free(target);
    throw_bad(env, bad, usage);
    return NULL;
  }
  int tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | O_CLOEXEC);
  if (tree < 0) {
    fail(env, "open_tree", source, errno);
    goto out;
  }
  struct berth_mount_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = (uint64_t)fd_d;
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
    fail(env, "mount_setattr", source, errno);
    goto out;
  }
  if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
    fail(env, "move_mount", target, errno);
    goto out;
  }
  if (napi_get_undefined(env, &undef) != napi_ok) {
    throw_napi(env, "napi_get_undefined");
    goto out;
  }
  result = undef;
out:
  if (tree >= 0) close(tree);
  free(source);
  free(target);
  return result;
}

int idmap_init(napi_env env, napi_value exports) {
  return export_fn(env, exports, "idmapBind", js_idmap_bind);
}
