#define _GNU_SOURCE
/*
 * berth's optional addon. A child process started by Node's child_process blocks the
 * daemon's event loop ~8-10 ms (libuv forks the whole Node process and waits for the exec),
 * so the hot paths use this instead:
 *   mount(2)/umount2(2) for the overlay root filesystems (no mount/umount binaries);
 *   run(): posix_spawn (vfork-like, cheap whatever the parent's size) of a short command
 *     with its output captured (the OCI runtime's delete, kill …);
 *   spawnMonitor(): posix_spawn of a daemonising monitor (conmon) with a sync pipe on fd 3,
 *     read until its first line.
 *   openat2()/readlinkat() for docker cp inside a container's root (fs.c).
 * Everything blocking runs on libuv's thread pool; each call returns a promise that rejects
 * with an Error carrying `errno` (a number) and `syscall`. Built by native/build.mjs when a C
 * compiler and Node's headers are present; berth falls back otherwise (src/index.ts).
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

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

void reject_errno(napi_env env, napi_deferred d, const char *syscall, const char *subject, int e) {
  char buf[512];
  napi_value msg, err, num, sys;
  snprintf(buf, sizeof buf, "%s %s: %s", syscall, subject, strerror(e));
  napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &err);
  napi_create_int32(env, e, &num);
  napi_set_named_property(env, err, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, err, "syscall", sys);
  napi_reject_deferred(env, d, err);
}

napi_value queue_work(napi_env env, const char *name, napi_async_execute_callback exec, napi_async_complete_callback done, void *data,
                             napi_async_work *work, napi_deferred *deferred) {
  napi_value promise, n;
  napi_create_promise(env, deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &n);
  napi_create_async_work(env, NULL, n, exec, done, data, work);
  napi_queue_async_work(env, *work);
  return promise;
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
    reject_errno(env, j->deferred, j->umount ? "umount2" : "mount", j->target, status == napi_ok ? j->err : EIO);
  }
  napi_delete_async_work(env, j->work);
  job_free(j);
}

static napi_value queue(napi_env env, job_t *j) {
  return queue_work(env, j->umount ? "berth_umount2" : "berth_mount", execute, complete, j, &j->work, &j->deferred);
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

/* ------------------------------------------------------------------ spawning */

typedef struct {
  char *data;
  size_t len, cap;
} buf_t;

static int buf_add(buf_t *b, const char *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    char *d;
    while (cap < b->len + n) cap *= 2;
    d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int monitor;          /* 0: run (capture), 1: spawnMonitor */
  char *path, *cwd, *log;
  char **argv, **envp;  /* NULL-terminated */
  int timeout_ms;
  /* results */
  int err;              /* errno of a failure to start; 0 when started */
  const char *syscall;
  pid_t pid;
  int status;           /* waitpid status */
  int timed_out;
  buf_t out, errb;      /* run: stdout, stderr; monitor: out = sync pipe text */
} proc_t;

static void strv_free(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

static void proc_free(proc_t *j) {
  free(j->path);
  free(j->cwd);
  free(j->log);
  strv_free(j->argv);
  strv_free(j->envp);
  free(j->out.data);
  free(j->errb.data);
  free(j);
}

/* An array of strings as a NULL-terminated vector; NULL (bad = 1) when it is not one. */
static char **arg_strv(napi_env env, napi_value v, int *bad) {
  uint32_t n, i;
  char **out;
  bool is;
  if (napi_is_array(env, v, &is) != napi_ok || !is || napi_get_array_length(env, v, &n) != napi_ok) { *bad = 1; return NULL; }
  out = calloc(n + 1, sizeof *out);
  if (!out) { *bad = 1; return NULL; }
  for (i = 0; i < n; i++) {
    napi_value e;
    napi_get_element(env, v, i, &e);
    out[i] = arg_string(env, e, 0, bad);
    if (*bad) { strv_free(out); return NULL; }
  }
  return out;
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* The child starts with default signal dispositions and no blocked signals (Node ignores
 * SIGPIPE, and a thread-pool thread may block signals). */
static int spawn_attrs(posix_spawnattr_t *at, int setsid) {
  sigset_t all, none;
  short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  sigemptyset(&none);
  if (setsid) flags |= POSIX_SPAWN_SETSID;
  if (posix_spawnattr_init(at)) return -1;
  posix_spawnattr_setsigdefault(at, &all);
  posix_spawnattr_setsigmask(at, &none);
  posix_spawnattr_setflags(at, flags);
  return 0;
}

/* A pipe whose ends are both above fd 9 and close-on-exec. */
static int high_pipe(int p[2]) {
  int raw[2];
  if (pipe2(raw, O_CLOEXEC) < 0) return -1;
  p[0] = fcntl(raw[0], F_DUPFD_CLOEXEC, 10);
  p[1] = fcntl(raw[1], F_DUPFD_CLOEXEC, 10);
  close(raw[0]);
  close(raw[1]);
  if (p[0] < 0 || p[1] < 0) {
    if (p[0] >= 0) close(p[0]);
    if (p[1] >= 0) close(p[1]);
    return -1;
  }
  return 0;
}

/* Read the fds until EOF on all (or, for the monitor, the first newline), or the deadline. */
static void drain(proc_t *j, int *fds, buf_t **bufs, int n, int until_newline) {
  long deadline = j->timeout_ms > 0 ? now_ms() + j->timeout_ms : 0;
  char chunk[8192];
  int open_n = n;
  while (open_n > 0) {
    struct pollfd pf[2];
    int wait = -1, i, r;
    for (i = 0; i < n; i++) { pf[i].fd = fds[i]; pf[i].events = POLLIN; pf[i].revents = 0; }
    if (deadline) {
      long left = deadline - now_ms();
      if (left <= 0) { j->timed_out = 1; return; }
      wait = (int)left;
    }
    r = poll(pf, n, wait);
    if (r < 0) { if (errno == EINTR) continue; return; }
    if (r == 0) continue; /* deadline checked above */
    for (i = 0; i < n; i++) {
      ssize_t got;
      if (fds[i] < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      got = read(fds[i], chunk, sizeof chunk);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) { fds[i] = -1; open_n--; continue; }
      buf_add(bufs[i], chunk, (size_t)got);
      if (until_newline && memchr(chunk, '\n', (size_t)got)) return;
    }
  }
}

static void proc_execute(napi_env env, void *data) {
  proc_t *j = data;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  int a[2] = {-1, -1}, b[2] = {-1, -1}, rc;
  char **envp = j->envp ? j->envp : environ;
  (void)env;
  if (high_pipe(a) < 0 || (!j->monitor && high_pipe(b) < 0)) { j->err = errno; j->syscall = "pipe2"; goto out; }
  if (posix_spawn_file_actions_init(&fa)) { j->err = ENOMEM; j->syscall = "posix_spawn"; goto out; }
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (j->monitor) {
    /* stdout+stderr to the log file, the sync pipe's write end as fd 3, cwd, new session */
    posix_spawn_file_actions_addopen(&fa, 1, j->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_adddup2(&fa, a[1], 3);
    if (j->cwd) posix_spawn_file_actions_addchdir_np(&fa, j->cwd);
  } else {
    posix_spawn_file_actions_adddup2(&fa, a[1], 1);
    posix_spawn_file_actions_adddup2(&fa, b[1], 2);
  }
  spawn_attrs(&at, j->monitor);
  rc = posix_spawn(&j->pid, j->path, &fa, &at, j->argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(a[1]); a[1] = -1;
  if (b[1] >= 0) { close(b[1]); b[1] = -1; }
  if (rc != 0) { j->err = rc; j->syscall = "posix_spawn"; j->pid = 0; goto out; }
  if (j->monitor) {
    int fds[1] = {a[0]};
    buf_t *bufs[1] = {&j->out};
    drain(j, fds, bufs, 1, 1);
  } else {
    int fds[2] = {a[0], b[0]};
    buf_t *bufs[2] = {&j->out, &j->errb};
    drain(j, fds, bufs, 2, 0);
  }
  if (j->timed_out) kill(j->pid, SIGKILL);
  /* A monitor's first process exits as soon as it has daemonised; a command at its end. */
  while (waitpid(j->pid, &j->status, 0) < 0 && errno == EINTR) {}
out:
  if (a[0] >= 0) close(a[0]);
  if (a[1] >= 0) close(a[1]);
  if (b[0] >= 0) close(b[0]);
  if (b[1] >= 0) close(b[1]);
}

static void proc_complete(napi_env env, napi_status status, void *data) {
  proc_t *j = data;
  if (status != napi_ok || j->err) {
    reject_errno(env, j->deferred, j->syscall ? j->syscall : "spawn", j->path, status == napi_ok ? j->err : EIO);
  } else {
    napi_value res, v;
    napi_create_object(env, &res);
    napi_create_int32(env, (int32_t)j->pid, &v);
    napi_set_named_property(env, res, "pid", v);
    if (WIFEXITED(j->status)) napi_create_int32(env, WEXITSTATUS(j->status), &v);
    else napi_get_null(env, &v);
    napi_set_named_property(env, res, "status", v);
    if (WIFSIGNALED(j->status)) napi_create_int32(env, WTERMSIG(j->status), &v);
    else napi_get_null(env, &v);
    napi_set_named_property(env, res, "signal", v);
    napi_get_boolean(env, j->timed_out != 0, &v);
    napi_set_named_property(env, res, "timedOut", v);
    napi_create_string_utf8(env, j->out.data ? j->out.data : "", j->out.len, &v);
    napi_set_named_property(env, res, j->monitor ? "sync" : "stdout", v);
    if (!j->monitor) {
      napi_create_string_utf8(env, j->errb.data ? j->errb.data : "", j->errb.len, &v);
      napi_set_named_property(env, res, "stderr", v);
    }
    napi_resolve_deferred(env, j->deferred, res);
  }
  napi_delete_async_work(env, j->work);
  proc_free(j);
}

static napi_value proc_queue(napi_env env, proc_t *j) {
  return queue_work(env, "berth_spawn", proc_execute, proc_complete, j, &j->work, &j->deferred);
}

static int arg_timeout(napi_env env, napi_value v, int *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d < 0 || d > 2147483647.0) return 0;
  *out = (int)d;
  return 1;
}

/* The arguments common to run and spawnMonitor: (path, argv, envp | null, …); `want` in all.
 * NULL after throwing; *bad set when one of the three is not what it should be. */
static proc_t *proc_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *usage, int *bad) {
  size_t argc = want;
  napi_valuetype t;
  proc_t *j;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != want) { napi_throw_type_error(env, NULL, usage); return NULL; }
  j = calloc(1, sizeof *j);
  if (!j) { napi_throw_error(env, NULL, "out of memory"); return NULL; }
  j->path = arg_string(env, argv[0], 0, bad);
  j->argv = arg_strv(env, argv[1], bad);
  if (!j->argv || !j->argv[0]) *bad = 1;
  napi_typeof(env, argv[2], &t);
  if (t != napi_null && t != napi_undefined) j->envp = arg_strv(env, argv[2], bad);
  return j;
}

/* run(path, argv, envp | null, timeoutMs) → { pid, status, signal, timedOut, stdout, stderr } */
static napi_value js_run(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int bad = 0;
  proc_t *j = proc_args(env, info, 4, argv, "run(path, argv, envp, timeoutMs)", &bad);
  if (!j) return NULL;
  if (bad || !arg_timeout(env, argv[3], &j->timeout_ms)) {
    proc_free(j);
    napi_throw_type_error(env, NULL, "run: path a string, argv a non-empty array of strings, envp an array of strings or null, timeoutMs a number");
    return NULL;
  }
  return proc_queue(env, j);
}

/* spawnMonitor(path, argv, envp | null, cwd | null, logPath, timeoutMs) → { pid, status, signal, timedOut, sync } */
static napi_value js_spawn_monitor(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int bad = 0;
  proc_t *j = proc_args(env, info, 6, argv, "spawnMonitor(path, argv, envp, cwd, logPath, timeoutMs)", &bad);
  if (!j) return NULL;
  j->monitor = 1;
  j->cwd = arg_string(env, argv[3], 1, &bad);
  j->log = arg_string(env, argv[4], 0, &bad);
  if (bad || !arg_timeout(env, argv[5], &j->timeout_ms)) {
    proc_free(j);
    napi_throw_type_error(env, NULL, "spawnMonitor: path and logPath strings, argv a non-empty array of strings, envp an array or null, cwd a string or null, timeoutMs a number");
    return NULL;
  }
  return proc_queue(env, j);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "mount", NAPI_AUTO_LENGTH, js_mount, NULL, &f);
  napi_set_named_property(env, exports, "mount", f);
  napi_create_function(env, "umount2", NAPI_AUTO_LENGTH, js_umount2, NULL, &f);
  napi_set_named_property(env, exports, "umount2", f);
  napi_create_function(env, "run", NAPI_AUTO_LENGTH, js_run, NULL, &f);
  napi_set_named_property(env, exports, "run", f);
  napi_create_function(env, "spawnMonitor", NAPI_AUTO_LENGTH, js_spawn_monitor, NULL, &f);
  napi_set_named_property(env, exports, "spawnMonitor", f);
  fs_init(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
