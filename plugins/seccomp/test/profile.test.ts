/**
 * Docker's default profile evaluated as dockerd's setupSeccomp does (capabilities, architecture,
 * minKernel, defaultErrnoRet, the arch map), profile validation with the reason, the cache per
 * capability set, and the emitted `linux.seccomp` against the OCI runtime schema.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CAPABILITIES, errorKind, type OciSeccomp } from '@berth/core';
import { CompiledProfileCache, DEFAULT_PROFILE_URL, compileProfile, kernelAtLeast, nativeArch, parseProfile, subArchesRefused } from '../src/index.js';
import { ociSchemaErrors } from '@berth/testing';

const defaultProfile = () => parseProfile(readFileSync(DEFAULT_PROFILE_URL, 'utf8'));
const caps = [...DEFAULT_CAPABILITIES];
const amd64 = { arch: 'amd64', kernel: '6.18.0-1-amd64', caps };

function allowed(s: OciSeccomp | undefined): Set<string> {
  return new Set((s?.syscalls ?? []).filter((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args).flatMap((r) => r.names));
}

function rulesFor(s: OciSeccomp | undefined, name: string) {
  return (s?.syscalls ?? []).filter((r) => r.names.includes(name));
}

describe('default profile evaluation', () => {
  it('default capabilities: errno 1 by default, namespace and mount calls are not allowed, clone3 gets ENOSYS', () => {
    const s = compileProfile(defaultProfile(), amd64);
    expect(s?.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(s?.defaultErrnoRet).toBe(1);
    const ok = allowed(s);
    for (const n of ['read', 'write', 'openat', 'execve', 'arch_prctl']) expect(ok.has(n), n).toBe(true);
    for (const n of ['unshare', 'mount', 'setns', 'reboot', 'bpf', 'ptrace']) expect(ok.has(n), n).toBe(n === 'ptrace');
    expect(rulesFor(s, 'clone3')).toEqual([{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }]);
    // clone only with the namespace flags masked out
    expect(rulesFor(s, 'clone').every((r) => r.args?.length)).toBe(true);
    expect(ociSchemaErrors('oci-runtime-spec/config-schema.json', { ociVersion: '1.2.0', root: { path: '/r' }, linux: { seccomp: s } })).toBe('');
  });

  it('CAP_SYS_ADMIN allows unshare/mount/clone without masks, and drops the ENOSYS rule of clone3', () => {
    const s = compileProfile(defaultProfile(), { ...amd64, caps: [...caps, 'CAP_SYS_ADMIN'] });
    const ok = allowed(s);
    for (const n of ['unshare', 'mount', 'setns', 'clone', 'clone3']) expect(ok.has(n), n).toBe(true);
    expect(rulesFor(s, 'clone3').some((r) => r.action === 'SCMP_ACT_ERRNO')).toBe(false);
    expect(rulesFor(s, 'clone').some((r) => r.args?.length)).toBe(false);
  });

  it('the architecture map: x86_64 with its 32-bit siblings, aarch64 with arm; per-arch rules follow the arch', () => {
    const x = compileProfile(defaultProfile(), amd64);
    expect(x?.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    const a = compileProfile(defaultProfile(), { ...amd64, arch: 'arm64' });
    expect(a?.architectures).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    expect(allowed(x).has('arch_prctl')).toBe(true);
    expect(allowed(a).has('arch_prctl')).toBe(false);
    expect(allowed(a).has('set_tls')).toBe(true);
    expect(allowed(x).has('set_tls')).toBe(false);
    expect(nativeArch('x64')).toBe('amd64');
    expect(nativeArch('arm64')).toBe('arm64');
  });

  it('a sub-architecture whose ABI the kernel refuses is left out (x32 without the x32 ABI, x86 without IA32 emulation); the rules stay the same', () => {
    const full = compileProfile(defaultProfile(), amd64);
    const noX32 = compileProfile(defaultProfile(), { ...amd64, abis: { x32: false, ia32: true } });
    expect(noX32?.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86']);
    expect(noX32?.syscalls).toEqual(full?.syscalls);
    expect(noX32?.defaultAction).toBe(full?.defaultAction);
    expect(compileProfile(defaultProfile(), { ...amd64, abis: { x32: false, ia32: false } })?.architectures).toEqual(['SCMP_ARCH_X86_64']);
    // an ABI that runs, or one nobody could tell, keeps dockerd's list
    for (const abis of [{ x32: true, ia32: true }, { x32: null, ia32: null }, {}]) {
      expect(compileProfile(defaultProfile(), { ...amd64, abis })?.architectures, JSON.stringify(abis)).toEqual(full?.architectures);
    }
    // only x86_64's sub-architectures, and never a list the profile names itself
    expect(compileProfile(defaultProfile(), { ...amd64, arch: 'arm64', abis: { x32: false, ia32: false } })?.architectures).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    const listed = parseProfile({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X32'] });
    expect(compileProfile(listed, { ...amd64, abis: { x32: false } })?.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X32']);
    expect(subArchesRefused({ arch: 'amd64', abis: { x32: false, ia32: true } })).toEqual(['SCMP_ARCH_X32']);
  });

  it('minKernel: ptrace without CAP_SYS_PTRACE only from kernel 4.8 on', () => {
    expect(allowed(compileProfile(defaultProfile(), { ...amd64, kernel: '4.8.0' })).has('ptrace')).toBe(true);
    expect(allowed(compileProfile(defaultProfile(), { ...amd64, kernel: '4.4.0-210-generic' })).has('ptrace')).toBe(false);
    expect(allowed(compileProfile(defaultProfile(), { ...amd64, kernel: '4.4.0', caps: [...caps, 'CAP_SYS_PTRACE'] })).has('ptrace')).toBe(true);
    expect(kernelAtLeast('10.0.1', '4.8')).toBe(true);
    expect(kernelAtLeast('4.19.0', '4.8')).toBe(true);
    expect(kernelAtLeast('3.99', '4.8')).toBe(false);
  });

  it('excludes by capability: any one of them drops the rule; includes need all of them', () => {
    const p = parseProfile({
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        { names: ['a'], action: 'SCMP_ACT_ALLOW', excludes: { caps: ['CAP_X', 'CAP_Y'] } },
        { names: ['b'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_X', 'CAP_Y'] } },
        { name: 'c', action: 'SCMP_ACT_ALLOW', excludes: { minKernel: '5.0' } },
      ],
    });
    const names = (c: string[], kernel = '6.1') => (compileProfile(p, { arch: 'amd64', kernel, caps: c })?.syscalls ?? []).flatMap((r) => r.names);
    expect(names([])).toEqual(['a']);
    expect(names(['CAP_Y'])).toEqual([]);
    expect(names(['CAP_X', 'CAP_Y'])).toEqual(['b']);
    expect(names([], '4.19')).toEqual(['a', 'c']);
  });

  it('a profile that names neither action nor rules confines nothing; architectures are kept as given', () => {
    expect(compileProfile(parseProfile('{}'), amd64)).toBeUndefined();
    const s = compileProfile(parseProfile({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'] }), amd64);
    expect(s).toEqual({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'] });
  });
});

describe('profile validation', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', '{"defaultAction": ', /^Decoding seccomp profile failed: .*JSON/],
    ['not an object', '[1]', /must be a JSON object/],
    ['unknown action', '{"defaultAction":"SCMP_ACT_NOPE"}', /unknown defaultAction "SCMP_ACT_NOPE"/],
    ['both arch fields', '{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}', /both 'architectures' and 'archMap'/],
    ['name and names', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}', /both 'name' and 'names'/],
    ['no names', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ERRNO"}]}', /syscalls\[0\] names no system call/],
    ['bad op', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"EQ"}]}]}', /unknown operator "EQ"/],
    ['names not strings', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[1],"action":"SCMP_ACT_ERRNO"}]}', /names must be a list of strings/],
    ['bad minKernel', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ERRNO","includes":{"minKernel":"four"}}]}', /invalid kernel version "four"/],
    ['rules without default', '{"syscalls":[{"names":["a"],"action":"SCMP_ACT_ERRNO"}]}', /defaultAction is missing/],
  ];
  for (const [what, text, message] of cases) {
    it(`refuses ${what} with InvalidParameter and the reason`, () => {
      expect.assertions(2);
      try {
        parseProfile(text);
      } catch (err) {
        expect(errorKind(err)).toBe('InvalidParameter');
        expect((err as Error).message).toMatch(message);
      }
    });
  }
});

describe('CompiledProfileCache', () => {
  it('compiles once per capability set (order and duplicates do not matter); the shared result cannot be edited in place', () => {
    const cache = new CompiledProfileCache(defaultProfile(), { arch: 'amd64', kernel: '6.1.0' });
    const a = cache.get(caps);
    const b = cache.get([...caps].reverse().concat(caps[0]));
    expect(cache.compilations).toBe(1);
    expect(b).toBe(a);
    expect(() => a!.syscalls!.push({ names: ['unshare'], action: 'SCMP_ACT_ALLOW' })).toThrow(TypeError);
    expect(() => {
      a!.syscalls![0].names.length = 0;
    }).toThrow(TypeError);
    expect(cache.get(caps)!.syscalls![0].names.length).toBeGreaterThan(10);
    cache.get([...caps, 'CAP_SYS_ADMIN']);
    expect(cache.compilations).toBe(2);
  });
});
