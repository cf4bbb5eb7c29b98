#define _GNU_SOURCE
/*
 * run() and spawnMonitor(): posix_spawn (vfork-like, cheap whatever the parent's size) of a
 * short command with its output captured (the OCI runtime's delete, kill …), and of a
 * daemonising monitor (conmon) with a sync pipe on fd 3, read until its first line.
 * One deadline (timeoutMs, 0: none) covers reading the output *and* waiting for the process:
 * past it the process is SIGKILLed and the result says timedOut. Output that cannot be held in
 * memory is never silently cut: the process is killed and the call rejects with ENOMEM.
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

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
  long deadline;        /* CLOCK_MONOTONIC ms; 0: none */
  /* results */
  int err;              /* errno of a failure; 0 when all went well */
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

/* An array of strings as a NULL-terminated vector; NULL (BAD_* in *bad) when it is not one. */
static char **arg_strv(napi_env env, napi_value v, int *bad) {
  uint32_t n, i;
  char **out;
  bool is;
  if (napi_is_array(env, v, &is) != napi_ok || !is || napi_get_array_length(env, v, &n) != napi_ok) { *bad |= BAD_TYPE; return NULL; }
  out = calloc((size_t)n + 1, sizeof *out);
  if (!out) { *bad |= BAD_NOMEM; return NULL; }
  for (i = 0; i < n; i++) {
    napi_value e;
    if (napi_get_element(env, v, i, &e) != napi_ok) { *bad |= BAD_TYPE; strv_free(out); return NULL; }
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

/* ms left until the deadline: -1 for none, 0 when it has passed. */
static int left_ms(const proc_t *j) {
  long left;
  if (!j->deadline) return -1;
  left = j->deadline - now_ms();
  return left > 0 ? (int)left : 0;
}

/* The child starts with default signal dispositions and no blocked signals (Node ignores
 * SIGPIPE, and a thread-pool thread may block signals). 0 or the error number. */
static int spawn_attrs(posix_spawnattr_t *at, int setsid) {
  sigset_t all, none;
  short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
  int rc;
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  sigemptyset(&none);
  if (setsid) flags |= POSIX_SPAWN_SETSID;
  if ((rc = posix_spawnattr_init(at)) != 0) return rc;
  if ((rc = posix_spawnattr_setsigdefault(at, &all)) != 0 || (rc = posix_spawnattr_setsigmask(at, &none)) != 0 ||
      (rc = posix_spawnattr_setflags(at, flags)) != 0)
    posix_spawnattr_destroy(at);
  return rc;
}

/* The file actions of the child: stdin /dev/null; output to the pipes (run) or the log file,
 * the sync pipe on fd 3 and the cwd (monitor). 0 or the error number. */
static int file_actions(posix_spawn_file_actions_t *fa, const proc_t *j, int out_w, int err_w) {
  int rc;
  if ((rc = posix_spawn_file_actions_init(fa)) != 0) return rc;
  rc = posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
  if (j->monitor) {
    if (!rc) rc = posix_spawn_file_actions_addopen(fa, 1, j->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (!rc) rc = posix_spawn_file_actions_adddup2(fa, 1, 2);
    if (!rc) rc = posix_spawn_file_actions_adddup2(fa, out_w, 3);
    if (!rc && j->cwd) rc = posix_spawn_file_actions_addchdir_np(fa, j->cwd);
  } else {
    if (!rc) rc = posix_spawn_file_actions_adddup2(fa, out_w, 1);
    if (!rc) rc = posix_spawn_file_actions_adddup2(fa, err_w, 2);
  }
  if (rc) posix_spawn_file_actions_destroy(fa);
  return rc;
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

/* Read the fds until EOF on all (or, for the monitor, the first newline), or the deadline.
 * Output that cannot be stored sets ENOMEM and stops. */
static void drain(proc_t *j, int *fds, buf_t **bufs, int n, int until_newline) {
  char chunk[8192];
  int open_n = n;
  while (open_n > 0) {
    struct pollfd pf[2];
    int wait = left_ms(j), i, r;
    if (wait == 0) { j->timed_out = 1; return; }
    for (i = 0; i < n; i++) { pf[i].fd = fds[i]; pf[i].events = POLLIN; pf[i].revents = 0; }
    r = poll(pf, n, wait);
    if (r < 0) { if (errno == EINTR) continue; j->err = errno; j->syscall = "poll"; return; }
    if (r == 0) continue; /* deadline checked above */
    for (i = 0; i < n; i++) {
      ssize_t got;
      if (fds[i] < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      got = read(fds[i], chunk, sizeof chunk);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) { fds[i] = -1; open_n--; continue; }
      if (buf_add(bufs[i], chunk, (size_t)got) < 0) { j->err = ENOMEM; j->syscall = "read (output too large for memory)"; return; }
      if (until_newline && memchr(chunk, '\n', (size_t)got)) return;
    }
  }
}

/* Wait for the child until the deadline (pidfd + poll; a short sleep loop where pidfd_open is
 * missing); past it, SIGKILL and collect. The status lands in j->status. */
static void wait_child(proc_t *j) {
  int fd = j->deadline ? (int)syscall(SYS_pidfd_open, j->pid, 0) : -1;
  while (j->deadline) {
    int left = left_ms(j), r;
    if (waitpid(j->pid, &j->status, WNOHANG) == j->pid) { if (fd >= 0) close(fd); return; }
    if (left == 0) { j->timed_out = 1; kill(j->pid, SIGKILL); break; }
    if (fd >= 0) {
      struct pollfd pf = {fd, POLLIN, 0};
      r = poll(&pf, 1, left);
      if (r < 0 && errno != EINTR) { close(fd); fd = -1; }
    } else {
      struct timespec ts = {0, (left < 10 ? left : 10) * 1000000L};
      nanosleep(&ts, NULL);
    }
  }
  if (fd >= 0) close(fd);
  while (waitpid(j->pid, &j->status, 0) < 0 && errno == EINTR) {}
}

static void proc_execute(napi_env env, void *data) {
  proc_t *j = data;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  int a[2] = {-1, -1}, b[2] = {-1, -1}, rc;
  char **envp = j->envp ? j->envp : environ;
  (void)env;
  j->deadline = j->timeout_ms > 0 ? now_ms() + j->timeout_ms : 0;
  if (high_pipe(a) < 0 || (!j->monitor && high_pipe(b) < 0)) { j->err = errno; j->syscall = "pipe2"; goto out; }
  if ((rc = file_actions(&fa, j, a[1], b[1])) != 0) { j->err = rc; j->syscall = "posix_spawn_file_actions"; goto out; }
  if ((rc = spawn_attrs(&at, j->monitor)) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    j->err = rc;
    j->syscall = "posix_spawnattr";
    goto out;
  }
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
  /* Past the deadline, or its output cannot be kept: the process goes. */
  if (j->timed_out || j->err) kill(j->pid, SIGKILL);
  /* A monitor's first process exits as soon as it has daemonised; a command at its end. */
  wait_child(j);
out:
  if (a[0] >= 0) close(a[0]);
  if (a[1] >= 0) close(a[1]);
  if (b[0] >= 0) close(b[0]);
  if (b[1] >= 0) close(b[1]);
}

/* The result object; NULL when a napi call failed (e.g. output too long for a string). */
static napi_value proc_result(napi_env env, proc_t *j) {
  napi_value res, v;
  int ok;
  if (napi_create_object(env, &res) != napi_ok) return NULL;
  ok = set_prop(env, res, "pid", napi_create_int32(env, (int32_t)j->pid, &v), &v);
  ok = ok && set_prop(env, res, "status", WIFEXITED(j->status) ? napi_create_int32(env, WEXITSTATUS(j->status), &v) : napi_get_null(env, &v), &v);
  ok = ok && set_prop(env, res, "signal", WIFSIGNALED(j->status) ? napi_create_int32(env, WTERMSIG(j->status), &v) : napi_get_null(env, &v), &v);
  ok = ok && set_prop(env, res, "timedOut", napi_get_boolean(env, j->timed_out != 0, &v), &v);
  ok = ok && set_prop(env, res, j->monitor ? "sync" : "stdout", napi_create_string_utf8(env, j->out.data ? j->out.data : "", j->out.len, &v), &v);
  if (!j->monitor) ok = ok && set_prop(env, res, "stderr", napi_create_string_utf8(env, j->errb.data ? j->errb.data : "", j->errb.len, &v), &v);
  return ok ? res : NULL;
}

static void proc_complete(napi_env env, napi_status status, void *data) {
  proc_t *j = data;
  napi_value res = NULL;
  if (status != napi_ok || j->err) {
    reject_errno(env, j->deferred, j->syscall ? j->syscall : "spawn", j->path, status == napi_ok ? j->err : EIO);
  } else if ((res = proc_result(env, j)) != NULL) {
    napi_resolve_deferred(env, j->deferred, res);
  } else {
    /* a pending exception (a string past V8's limit) becomes the rejection */
    bool pending = false;
    napi_value exc;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending && napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_reject_deferred(env, j->deferred, exc);
    else reject_errno(env, j->deferred, "napi (building the result)", j->path, ENOMEM);
  }
  napi_delete_async_work(env, j->work);
  proc_free(j);
}

static napi_value proc_queue(napi_env env, proc_t *j) {
  napi_value p = queue_work(env, "berth_spawn", proc_execute, proc_complete, j, &j->work, &j->deferred);
  if (!p) proc_free(j);
  return p;
}

/* timeoutMs: a number (else BAD_TYPE), finite, 0 ≤ n ≤ 2^31-1 (else a RangeError: NaN would
 * otherwise become an undefined int); fractions are cut. 0 when it is fine. */
#define BAD_RANGE 4
static int arg_timeout(napi_env env, napi_value v, int *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return BAD_TYPE;
  if (isnan(d) || d < 0 || d > 2147483647.0) return BAD_RANGE;
  *out = (int)d;
  return 0;
}

/* Throw for the arguments of run/spawnMonitor (the job is freed). NULL. */
static napi_value proc_bad(napi_env env, proc_t *j, int bad, const char *usage) {
  proc_free(j);
  if (bad & (BAD_NOMEM | BAD_TYPE)) throw_bad(env, bad, usage);
  else napi_throw_range_error(env, NULL, "timeoutMs must be a number from 0 (no limit) to 2147483647");
  return NULL;
}

/* The arguments common to run and spawnMonitor: (path, argv, envp | null, …); `want` in all.
 * NULL after throwing; BAD_* in *bad when one of the three is not what it should be. */
static proc_t *proc_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *usage, int *bad) {
  size_t argc = want;
  napi_valuetype t;
  proc_t *j;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) { throw_napi(env, "napi_get_cb_info"); return NULL; }
  if (argc != want) { napi_throw_type_error(env, NULL, usage); return NULL; }
  j = calloc(1, sizeof *j);
  if (!j) { napi_throw_error(env, "ENOMEM", "out of memory"); return NULL; }
  j->path = arg_string(env, argv[0], 0, bad);
  j->argv = arg_strv(env, argv[1], bad);
  if (!j->argv || !j->argv[0]) *bad |= BAD_TYPE;
  if (napi_typeof(env, argv[2], &t) != napi_ok) *bad |= BAD_TYPE;
  else if (t != napi_null && t != napi_undefined) j->envp = arg_strv(env, argv[2], bad);
  return j;
}

/* run(path, argv, envp | null, timeoutMs) → { pid, status, signal, timedOut, stdout, stderr } */
static napi_value js_run(napi_env env, napi_callback_info info) {
  static const char usage[] = "run: path a string, argv a non-empty array of strings, envp an array of strings or null, timeoutMs a number";
  napi_value argv[4];
  int bad = 0;
  proc_t *j = proc_args(env, info, 4, argv, "run(path, argv, envp, timeoutMs)", &bad);
  if (!j) return NULL;
  bad |= arg_timeout(env, argv[3], &j->timeout_ms);
  if (bad) return proc_bad(env, j, bad, usage);
  return proc_queue(env, j);
}

/* spawnMonitor(path, argv, envp | null, cwd | null, logPath, timeoutMs) → { pid, status, signal, timedOut, sync } */
static napi_value js_spawn_monitor(napi_env env, napi_callback_info info) {
  static const char usage[] = "spawnMonitor: path and logPath strings, argv a non-empty array of strings, envp an array or null, cwd a string or null, timeoutMs a number";
  napi_value argv[6];
  int bad = 0;
  proc_t *j = proc_args(env, info, 6, argv, "spawnMonitor(path, argv, envp, cwd, logPath, timeoutMs)", &bad);
  if (!j) return NULL;
  j->monitor = 1;
  j->cwd = arg_string(env, argv[3], 1, &bad);
  j->log = arg_string(env, argv[4], 0, &bad);
  bad |= arg_timeout(env, argv[5], &j->timeout_ms);
  if (bad) return proc_bad(env, j, bad, usage);
  return proc_queue(env, j);
}

int spawn_init(napi_env env, napi_value exports) {
  return export_fn(env, exports, "run", js_run) && export_fn(env, exports, "spawnMonitor", js_spawn_monitor);
}
