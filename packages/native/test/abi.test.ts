/**
 * The addon's syscallAbis (native/abi.c): whether the kernel runs x32 and ia32 syscalls for an
 * x86_64 process, probed in forked children. Checked against the kernel's own configuration
 * where /proc/config.gz tells it, stable across calls, and leaving no child (zombie) and no fd
 * behind. Elsewhere than x86_64 both answers are null (unknown).
 */
import { readFileSync, readdirSync } from 'node:fs';
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
});
