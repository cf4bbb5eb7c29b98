/**
 * The seccomp plugin through the real docker CLI against berthd (runc + conmon): a default
 * container runs under Docker's default profile (Seccomp: 2 in /proc/1/status; `unshare -U`,
 * which needs no capability, fails with EPERM), `seccomp=unconfined` and --privileged run
 * without a filter, a profile file given to the CLI is applied, a bad one is refused at create
 * (125, the JSON error, no container), no-new-privileges reaches the process, and `docker info`
 * lists `name=seccomp,profile=builtin`. A berthd started with `--seccomp-profile FILE` gives that
 * profile to containers that name none (`seccomp=builtin` still names Docker's), and refuses to
 * start with a missing file. A static probe bind-mounted in makes x32 and ia32 getpid calls: on a
 * host whose kernel refuses x32 the default filter leaves x32 out (an x32 call is killed with
 * SIGSYS instead of answered ENOSYS: refused either way), 32-bit calls still run.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, startBerthd, type Berthd } from './helpers/berthd.js';
import { useBerthdWithTestImage } from './helpers/shared-berthd.js';

function seccompSkipReason(): string | null {
  const base = berthdSkipReason();
  if (base) return base;
  if (!/^Seccomp:\s*\d/m.test(fs.readFileSync('/proc/self/status', 'utf8'))) return 'the kernel has no seccomp';
  return null;
}
const skip = seccompSkipReason();

/** This process's capability bounding set, limited to the capabilities the kernel knows. */
function ownBoundingSet(): bigint {
  const last = Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'));
  const bnd = BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'}`);
  return bnd & ((1n << BigInt(last + 1)) - 1n);
}

describe.skipIf(skip)(`seccomp through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  useBerthdWithTestImage((b) => (d = b));

  const run = (opts: string[], cmd: string) => d.docker(['run', '--rm', '--network', 'none', ...opts, TEST_IMAGE, 'sh', '-c', cmd]);

  it('docker info lists name=seccomp,profile=builtin', async () => {
    const r = await d.docker(['info', '--format', '{{json .SecurityOptions}}']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toContain('name=seccomp,profile=builtin');
  }, 60_000);

  it('default: filter mode 2, unshare -U fails with EPERM; seccomp=unconfined: mode 0 and unshare -U works', async () => {
    const confined = await run([], 'grep "^Seccomp:" /proc/1/status; unshare -U true; echo "rc=$?"');
    expect(confined.code, JSON.stringify(confined)).toBe(0);
    expect(confined.stdout).toMatch(/^Seccomp:\s+2$/m);
    expect(confined.stdout).toMatch(/^rc=1$/m);
    expect(confined.stderr + confined.stdout).toMatch(/Operation not permitted/);

    const free = await run(['--security-opt', 'seccomp=unconfined'], 'grep "^Seccomp:" /proc/1/status; unshare -U true; echo "rc=$?"');
    expect(free.code, JSON.stringify(free)).toBe(0);
    expect(free.stdout).toMatch(/^Seccomp:\s+0$/m);
    expect(free.stdout).toMatch(/^rc=0$/m);
  }, 60_000);

  it('--privileged runs without a filter, with every capability of the daemon bounding set (also where that set is reduced)', async () => {
    const r = await run(['--privileged'], 'grep -E "^(Seccomp|CapBnd|CapEff):" /proc/1/status');
    expect(r.code, JSON.stringify(r)).toBe(0);
    expect(r.stdout).toMatch(/^Seccomp:\s+0$/m);
    // berthd runs as this test's child with the same bounding set
    const want = ownBoundingSet();
    for (const field of ['CapBnd', 'CapEff']) {
      const hex = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(r.stdout)?.[1];
      expect(hex, r.stdout).toBeDefined();
      expect(BigInt(`0x${hex}`), field).toBe(want);
    }
  }, 60_000);

  it('a profile file given to the CLI is applied (mkdir denied with EACCES, the rest allowed)', async () => {
    const file = path.join(d.dir, 'no-mkdir.json');
    fs.writeFileSync(
      file,
      JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] }, null, 2),
    );
    const r = await run(['--security-opt', `seccomp=${file}`], 'grep "^Seccomp:" /proc/1/status; mkdir /tmp/x; echo "rc=$?"; touch /tmp/y && echo touched');
    expect(r.code, JSON.stringify(r)).toBe(0);
    expect(r.stdout).toMatch(/^Seccomp:\s+2$/m);
    expect(r.stdout).toMatch(/^rc=1$/m);
    expect(r.stderr).toMatch(/Permission denied/);
    expect(r.stdout).toMatch(/^touched$/m);
  }, 60_000);

  it('a bad profile is refused at create with the JSON error, and no container is made', async () => {
    const file = path.join(d.dir, 'bad.json');
    fs.writeFileSync(file, '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOPE"}]}');
    const r = await d.docker(['run', '--name', 'sc-bad', '--security-opt', `seccomp=${file}`, TEST_IMAGE, 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/Decoding seccomp profile failed: .*unknown action "SCMP_ACT_NOPE"/);
    const ps = await d.docker(['ps', '-a', '--filter', 'name=sc-bad', '-q']);
    expect(ps.stdout.trim()).toBe('');
  }, 60_000);

  it('no-new-privileges reaches the process beside the filter', async () => {
    const r = await run(['--security-opt', 'no-new-privileges'], 'grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status');
    expect(r.code, JSON.stringify(r)).toBe(0);
    expect(r.stdout).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(r.stdout).toMatch(/^Seccomp:\s+2$/m);
  }, 60_000);
});

/** A static program that calls getpid through the x32 ABI (`x32`) or int 0x80 (`ia32`) and prints what came back. */
const ABI_PROBE = `
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
  long self = syscall(SYS_getpid), r;
  if (argc > 1 && strcmp(argv[1], "ia32") == 0) {
    r = 20;
    __asm__ volatile("int $0x80" : "+a"(r) : : "r8", "r9", "r10", "r11", "memory", "cc");
    printf("ia32 %s\\n", r == self ? "runs" : "refused");
  } else {
    r = syscall(0x40000000L | 39);
    printf("x32 %s\\n", r == self ? "runs" : r < 0 && errno == ENOSYS ? "enosys" : "other");
  }
  return 0;
}
`;

/** The probe built static in `dir` (null when gcc or the static libc is missing: scripts/install-deps.sh installs them). */
function buildAbiProbe(dir: string): string | null {
  if (process.arch !== 'x64') return null;
  const src = path.join(dir, 'abi-probe.c');
  fs.writeFileSync(src, ABI_PROBE);
  try {
    execFileSync('gcc', ['-static', '-O1', '-o', path.join(dir, 'abi-probe'), src], { stdio: 'pipe' });
    return path.join(dir, 'abi-probe');
  } catch {
    return null;
  }
}

describe.skipIf(skip)(`seccomp architectures through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  useBerthdWithTestImage((b) => (d = b));

  it('x32 is filtered only where the kernel runs it; 32-bit (ia32) calls still run under the default filter', async (ctx) => {
    const probe = buildAbiProbe(d.dir);
    if (!probe) return ctx.skip('needs x86_64, gcc and a static libc (scripts/install-deps.sh)');
    const host = execFileSync(probe, ['x32'], { encoding: 'utf8' }).trim() + '\n' + execFileSync(probe, ['ia32'], { encoding: 'utf8' }).trim();
    const run = (opts: string[]) =>
      d.docker(['run', '--rm', '--network', 'none', '-v', `${probe}:/abi-probe:ro`, ...opts, TEST_IMAGE, 'sh', '-c', '/abi-probe x32; echo "x32 rc=$?"; /abi-probe ia32; echo "ia32 rc=$?"']);
    const confined = await run([]);
    expect(confined.code, JSON.stringify(confined)).toBe(0);
    if (/^x32 enosys$/m.test(host)) {
      // the kernel refuses x32: left out of the filter, an x32 call meets runc's bad-arch action (SIGSYS)
      expect(confined.stdout).toMatch(/^x32 rc=159$/m);
    } else {
      expect(confined.stdout).toMatch(/^x32 runs$/m);
    }
    if (/^ia32 runs$/m.test(host)) expect(confined.stdout).toMatch(/^ia32 runs$/m);
    expect(confined.stdout).toMatch(/^ia32 rc=0$/m);
    // without a filter the container sees what the host's kernel answers
    const free = await run(['--security-opt', 'seccomp=unconfined']);
    expect(free.code, JSON.stringify(free)).toBe(0);
    expect(free.stdout).toContain(host.split('\n')[0]);
    expect(free.stdout).toContain(host.split('\n')[1]);
  }, 60_000);
});

describe.skipIf(skip)(`berthd --seccomp-profile through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  let profile: string;
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join('/tmp', 'bd-seccomp-profile-'));
    profile = path.join(dir, 'no-mkdir.json');
    fs.writeFileSync(profile, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] }));
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  useBerthdWithTestImage((b) => (d = b), { start: () => ({ args: ['--seccomp-profile', profile] }) });

  const run = (opts: string[], cmd: string) => d.docker(['run', '--rm', '--network', 'none', ...opts, TEST_IMAGE, 'sh', '-c', cmd]);

  it('docker info names the file; a container that names no profile gets it, seccomp=builtin gets Docker’s', async () => {
    const info = await d.docker(['info', '--format', '{{json .SecurityOptions}}']);
    expect(info.code, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)).toContain(`name=seccomp,profile=${profile}`);

    const plain = await run([], 'grep "^Seccomp:" /proc/1/status; mkdir /tmp/x; echo "mkdir=$?"; unshare -U true; echo "unshare=$?"');
    expect(plain.code, JSON.stringify(plain)).toBe(0);
    expect(plain.stdout).toMatch(/^Seccomp:\s+2$/m);
    expect(plain.stdout).toMatch(/^mkdir=1$/m);
    expect(plain.stdout).toMatch(/^unshare=0$/m);

    const builtin = await run(['--security-opt', 'seccomp=builtin'], 'mkdir /tmp/x; echo "mkdir=$?"; unshare -U true; echo "unshare=$?"');
    expect(builtin.code, JSON.stringify(builtin)).toBe(0);
    expect(builtin.stdout).toMatch(/^mkdir=0$/m);
    expect(builtin.stdout).toMatch(/^unshare=1$/m);
  }, 60_000);

  it('a missing profile file stops berthd at start, naming the file', async () => {
    const missing = path.join(dir, 'missing.json');
    const failed = await startBerthd({ args: ['--seccomp-profile', missing], expectFailure: true });
    try {
      expect(await failed.stop()).not.toBe(0);
      expect(failed.log()).toContain(`opening seccomp profile (${missing}) failed`);
    } finally {
      await failed.cleanup();
    }
  }, 60_000);
});
