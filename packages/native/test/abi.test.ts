/**
 * The addon's syscallAbis (native/abi.c): whether the kernel runs x32 and ia32 syscalls for an
 * x86_64 process, probed in forked children. Checked against the kernel's own configuration
 * where /proc/config.gz tells it, stable across calls, and leaving no child (zombie) and no fd
 * behind; under a seccomp filter that kills those calls (a helper built with gcc installs it and
 * execs node) the probe's children die, the answers are null and the process lives on.
 * Elsewhere than x86_64 both answers are null (unknown).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { nativeAddon } from '../src/index.js';
import { noAddon } from './build-skip.js';


/** The kernel's build configuration, when it exposes it. */
function kernelConfig(): string | undefined {
  try {
    return gunzipSync(readFileSync('/proc/config.gz')).toString('utf8');
  } catch {
    return undefined;
  }
}

/** This process's children (any thread's), from /proc. */
function children(): string[] {
  return readdirSync('/proc/self/task').flatMap((t) => readFileSync(`/proc/self/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean));
}

describe.skipIf(noAddon !== null)(`native syscallAbis${noAddon ? ` (skipped: ${noAddon})` : ''}`, () => {
  it('answers true, false or null for x32 and ia32, the same at each call, leaving no child and no fd', () => {
    const n = nativeAddon()!;
    const fds = readdirSync('/proc/self/fd').length;
    const a = n.syscallAbis();
    expect(n.syscallAbis()).toEqual(a);
    expect(Object.keys(a).sort()).toEqual(['ia32', 'x32']);
    for (const v of Object.values(a)) expect([true, false, null]).toContain(v);
    if (process.arch !== 'x64') expect(a).toEqual({ x32: null, ia32: null });
    expect(children()).toEqual([]);
    expect(readdirSync('/proc/self/fd').length).toBe(fds);
  });

  const configSkip = process.arch !== 'x64' ? `the x32/ia32 ABIs are x86-64's (this is ${process.arch})` : kernelConfig() === undefined ? 'the kernel does not expose its configuration (/proc/config.gz)' : null;
  it.skipIf(configSkip !== null)(`agrees with the kernel configuration (/proc/config.gz)${configSkip ? ` (skipped: ${configSkip})` : ''}`, () => {
    const config = kernelConfig()!;
    const filtered = /^Seccomp:\s*[12]/m.test(readFileSync('/proc/self/status', 'utf8'));
    const a = nativeAddon()!.syscallAbis();
    // a kernel built without x32 refuses every x32 number with ENOSYS
    if (!/^CONFIG_X86_X32_ABI=y/m.test(config) && !filtered) expect(a.x32).toBe(false);
    // IA32 emulation built in, on by default and not switched off at boot: int 0x80 runs
    const cmdline = readFileSync('/proc/cmdline', 'utf8');
    const ia32On = /^CONFIG_IA32_EMULATION=y/m.test(config) && !/^CONFIG_IA32_EMULATION_DEFAULT_DISABLED=y/m.test(config) && !/\bia32_emulation=/.test(cmdline);
    if (ia32On && !filtered) expect(a.ia32).toBe(true);
    if (!/^CONFIG_IA32_EMULATION=y/m.test(config)) expect(a.ia32).toBe(false);
  });

  const filterSkip = process.arch !== 'x64' ? `the x32/ia32 ABIs are x86-64's (this is ${process.arch})` : !gccOk() ? 'no gcc to build the filter helper (scripts/install-deps.sh installs it)' : null;
  it.skipIf(filterSkip !== null)(`under a seccomp filter that kills x32 and ia32 calls the probe answers null and the process lives${filterSkip ? ` (skipped: ${filterSkip})` : ''}`, () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'berth-abi-filter-'));
    try {
      writeFileSync(path.join(dir, 'f.c'), KILL_COMPAT_FILTER);
      execFileSync('gcc', ['-O1', '-o', path.join(dir, 'f'), path.join(dir, 'f.c')]);
      const addon = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/native/berth.node');
      const script = `process.stdout.write(JSON.stringify(require(${JSON.stringify(addon)}).syscallAbis()))`;
      const out = execFileSync(path.join(dir, 'f'), [process.execPath, '-e', script], { encoding: 'utf8', timeout: 20_000 });
      expect(JSON.parse(out)).toEqual({ x32: null, ia32: null });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function gccOk(): boolean {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Installs a filter that kills any syscall with the x32 bit or of another audit arch than x86_64, then execs argv[1..]. */
const KILL_COMPAT_FILTER = `
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <unistd.h>
int main(int argc, char **argv) {
  struct sock_filter f[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_THREAD),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x40000000, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_THREAD),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { sizeof f / sizeof f[0], f };
  if (argc < 2 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) return 99;
  execv(argv[1], argv + 1);
  return 98;
}
`;
