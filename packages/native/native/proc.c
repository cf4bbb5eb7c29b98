#define _GNU_SOURCE
/*
 * Collecting children the daemon did not spawn itself: prctl(PR_SET_CHILD_SUBREAPER) makes
 * orphaned descendants (a daemonised conmon, a container's init whose conmon was killed)
 * children of this process; pidfd_open(2) names one such process for good (no pid reuse);
 * waitid(P_PIDFD, …, WNOHANG) collects exactly that process's exit, never blocking, and never
 * touches a child it was not given (libuv reaps its own children by pid; see the runtime's
 * reaper.ts for the rule of which pids are waited for). All synchronous: each is one
 * non-blocking syscall. Errors are thrown with `errno` and `syscall`.
 */
#include "common.h"
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static napi_value throw_errno(napi_env env, const char *syscall, const char *subject, int e) {
  napi_value err = errno_error(env, syscall, subject, e);
  if (err) napi_throw(env, err);
  else throw_napi(env, syscall);
  return NULL;
}

/* The single argument, a non-negative integer ≤ INT32_MAX; -1 after throwing. */
static int arg_int(napi_env env, napi_callback_info info, const char *usage) {
  size_t argc = 1;
  napi_value v;
  double d;
  if (napi_get_cb_info(env, info, &argc, &v, NULL, NULL) != napi_ok) { throw_napi(env, "napi_get_cb_info"); return -1; }
  if (argc != 1 || napi_get_value_double(env, v, &d) != napi_ok) { napi_throw_type_error(env, NULL, usage); return -1; }
  if (isnan(d) || d < 0 || d > 2147483647.0 || d != floor(d)) { napi_throw_range_error(env, NULL, usage); return -1; }
  return (int)d;
}

/* setChildSubreaper(on: boolean): prctl(PR_SET_CHILD_SUBREAPER) */
static napi_value js_set_child_subreaper(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value v, undef;
  bool on;
  if (napi_get_cb_info(env, info, &argc, &v, NULL, NULL) != napi_ok) return throw_napi(env, "napi_get_cb_info");
  if (argc != 1 || napi_get_value_bool(env, v, &on) != napi_ok) {
    napi_throw_type_error(env, NULL, "setChildSubreaper(on): on is a boolean");
    return NULL;
  }
  if (prctl(PR_SET_CHILD_SUBREAPER, on ? 1UL : 0UL, 0UL, 0UL, 0UL) < 0) return throw_errno(env, "prctl", "PR_SET_CHILD_SUBREAPER", errno);
  if (napi_get_undefined(env, &undef) != napi_ok) return throw_napi(env, "napi_get_undefined");
  return undef;
}

/* childSubreaper(): prctl(PR_GET_CHILD_SUBREAPER) */
static napi_value js_child_subreaper(napi_env env, napi_callback_info info) {
  int on = 0;
  napi_value v;
  (void)info;
  if (prctl(PR_GET_CHILD_SUBREAPER, (unsigned long)&on, 0UL, 0UL, 0UL) < 0) return throw_errno(env, "prctl", "PR_GET_CHILD_SUBREAPER", errno);
  if (napi_get_boolean(env, on != 0, &v) != napi_ok) return throw_napi(env, "napi_get_boolean");
  return v;
}

/* pidfdOpen(pid) → fd (close-on-exec; the caller closes it) */
static napi_value js_pidfd_open(napi_env env, napi_callback_info info) {
  char subject[32];
  napi_value v;
  long fd;
  int pid = arg_int(env, info, "pidfdOpen(pid): pid a positive integer");
  if (pid < 0) return NULL;
  snprintf(subject, sizeof subject, "%d", pid);
  if (pid == 0) return throw_errno(env, "pidfd_open", subject, EINVAL);
  fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return throw_errno(env, "pidfd_open", subject, errno);
  /* pidfds are close-on-exec from the kernel */
  if (napi_create_int32(env, (int32_t)fd, &v) != napi_ok) {
    close((int)fd);
    return throw_napi(env, "napi_create_int32");
  }
  return v;
}

/* waitPidfd(fd) → null while the process runs, { pid, status, signal } once it is collected
 * (then it is gone); throws ECHILD when it is not (or no longer) this process's child. */
static napi_value js_wait_pidfd(napi_env env, napi_callback_info info) {
  char subject[32];
  siginfo_t si;
  napi_value res, v;
  int ok, fd = arg_int(env, info, "waitPidfd(fd): fd a non-negative integer");
  if (fd < 0) return NULL;
  snprintf(subject, sizeof subject, "pidfd %d", fd);
  si.si_pid = 0;
  while (waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) < 0) {
    if (errno != EINTR) return throw_errno(env, "waitid", subject, errno);
  }
  if (si.si_pid == 0) {
    if (napi_get_null(env, &v) != napi_ok) return throw_napi(env, "napi_get_null");
    return v;
  }
  if (napi_create_object(env, &res) != napi_ok) return throw_napi(env, "napi_create_object");
  ok = set_prop(env, res, "pid", napi_create_int32(env, si.si_pid, &v), &v);
  ok = ok && set_prop(env, res, "status", si.si_code == CLD_EXITED ? napi_create_int32(env, si.si_status, &v) : napi_get_null(env, &v), &v);
  ok = ok && set_prop(env, res, "signal", si.si_code != CLD_EXITED ? napi_create_int32(env, si.si_status, &v) : napi_get_null(env, &v), &v);
  /* the child is collected: its status must reach the caller or it is lost */
  return ok ? res : throw_napi(env, "building waitPidfd's result");
}

int proc_init(napi_env env, napi_value exports) {
  return export_fn(env, exports, "setChildSubreaper", js_set_child_subreaper) && export_fn(env, exports, "childSubreaper", js_child_subreaper) &&
         export_fn(env, exports, "pidfdOpen", js_pidfd_open) && export_fn(env, exports, "waitPidfd", js_wait_pidfd);
}
