#define _GNU_SOURCE
/*
 * Which extra syscall ABIs the running kernel serves an x86_64 process (syscallAbis()):
 *   x32:  a syscall number with __X32_SYSCALL_BIT set (x32 getpid = bit | 39). A kernel built
 *         without CONFIG_X86_X32_ABI, or with it switched off at boot, answers ENOSYS.
 *   ia32: `int $0x80` (i386 getpid = 20). Without IA32 emulation (not built, or
 *         ia32_emulation=false) the vector is no user gate and the CPU faults (SIGSEGV/SIGBUS).
 * Each probe runs in a forked child (_Fork where glibc has it: no atfork handlers) that only
 * makes the syscall and _exits (async-signal-safe in a threaded process), so a seccomp filter on this process that kills unknown
 * ABIs, or the fault, ends the child and never the daemon. Answers: true (the ABI runs),
 * false (the kernel refuses it), null (not x86_64, or inconclusive: a filter on this process
 * killed the child, fork failed, an unexpected result). Synchronous: two forks, once per
 * daemon start. The seccomp plugin leaves an ABI the kernel refuses out of its filters
 * (plugins/seccomp; docs/security.md).
 */
#include "common.h"
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define ABI_RUNS 0
#define ABI_REFUSED 1
#define ABI_UNKNOWN 2

#if defined(__x86_64__) && !defined(__ILP32__)
#define X32_SYSCALL_BIT 0x40000000L
#define X32_NR_GETPID 39L
#define I386_NR_GETPID 20L

/* In the child: what the kernel did with getpid in that ABI, as an exit code. */
static int child_probe(int ia32, pid_t self) {
  long r;
  if (!ia32) {
    r = syscall(X32_SYSCALL_BIT | X32_NR_GETPID);
    if (r == self) return ABI_RUNS;
    return r < 0 && errno == ENOSYS ? ABI_REFUSED : ABI_UNKNOWN;
  }
  r = I386_NR_GETPID;
  /* int 0x80 from 64-bit code: eax in, eax out; the kernel may clobber r8-r11 */
  __asm__ volatile("int $0x80" : "+a"(r) : : "r8", "r9", "r10", "r11", "memory", "cc");
  if (r == self) return ABI_RUNS;
  return r == -ENOSYS ? ABI_REFUSED : ABI_UNKNOWN;
}

/* ABI_RUNS, ABI_REFUSED or ABI_UNKNOWN for one ABI, probed in a child. */
static int probe(int ia32) {
  int status = 0;
  /* _Fork: no atfork handlers run (another thread may hold their locks); fork before glibc 2.34 */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  pid_t pid = _Fork();
#else
  pid_t pid = fork();
#endif
  if (pid < 0) return ABI_UNKNOWN;
  if (pid == 0) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    /* inherited handlers (V8's fault handler) must not catch the probe's fault */
    sigaction(SIGSEGV, &dfl, NULL);
    sigaction(SIGBUS, &dfl, NULL);
    sigaction(SIGSYS, &dfl, NULL);
    _exit(child_probe(ia32, (pid_t)syscall(SYS_getpid)));
  }
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ABI_UNKNOWN;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status) <= ABI_UNKNOWN ? WEXITSTATUS(status) : ABI_UNKNOWN;
  /* the fault of a missing int 0x80 gate; SIGSYS is a filter on this process: no answer */
  if (ia32 && WIFSIGNALED(status) && (WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS)) return ABI_REFUSED;
  return ABI_UNKNOWN;
}
#else
static int probe(int ia32) {
  (void)ia32;
  return ABI_UNKNOWN;
}
#endif

static napi_status abi_value(napi_env env, int answer, napi_value *out) {
  if (answer == ABI_UNKNOWN) return napi_get_null(env, out);
  return napi_get_boolean(env, answer == ABI_RUNS, out);
}

/* syscallAbis() → { x32: boolean | null, ia32: boolean | null } */
static napi_value js_syscall_abis(napi_env env, napi_callback_info info) {
  napi_value res, x32, ia32;
  if (napi_create_object(env, &res) != napi_ok) return throw_napi(env, "napi_create_object");
  if (!set_prop(env, res, "x32", abi_value(env, probe(0), &x32), &x32) || !set_prop(env, res, "ia32", abi_value(env, probe(1), &ia32), &ia32))
    return throw_napi(env, "building syscallAbis' result");
  return res;
}

int abi_init(napi_env env, napi_value exports) {
  return export_fn(env, exports, "syscallAbis", js_syscall_abis);
}
