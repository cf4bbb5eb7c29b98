/**
 * The seccomp plugin alone in an engine on the fake runtime (no root): the spec of a default,
 * an unconfined, a privileged and a custom-profile container, a bad profile refused at create
 * (nothing stored), no-new-privileges beside the filter, /info's security option, and the skip
 * path on a host without seccomp.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IHost, errorKind, type HostConfig } from '@berth/core';
import { FakeHost, createTestEngine, ociSchemaErrors, type TestEngine } from '@berth/testing';
import { seccompPlugin } from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

async function setup(host: FakeHost = new FakeHost({ seccomp: true, kernel: '6.18.0' }), profile?: string): Promise<TestEngine> {
  t = await createTestEngine({
    plugins: [seccompPlugin({ config: { arch: 'amd64', ...(profile !== undefined ? { profile } : {}) } })],
    providers: (c) => c.register(IHost, { useValue: host }),
  });
  return t;
}

async function specOf(te: TestEngine, hc: HostConfig = {}) {
  const id = await te.createContainer({ HostConfig: hc });
  await te.engine.containers.start(id);
  return te.fake.containers.get(id)!.spec!;
}

const CUSTOM = JSON.stringify({
  defaultAction: 'SCMP_ACT_ALLOW',
  archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86'] }],
  syscalls: [
    { names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 },
    { names: ['settimeofday'], action: 'SCMP_ACT_ERRNO', includes: { caps: ['CAP_SYS_TIME'] } },
  ],
});

describe('seccomp plugin', () => {
  it('a default container gets Docker’s default profile for its capabilities; the spec is valid OCI', async () => {
    const te = await setup();
    expect(te.engine.securityOptions()).toEqual(['name=seccomp,profile=builtin']);
    const spec = await specOf(te);
    const s = spec.linux?.seccomp;
    expect(s?.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(s?.defaultErrnoRet).toBe(1);
    expect(s?.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    const plain = new Set(s!.syscalls!.filter((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args).flatMap((r) => r.names));
    expect(plain.has('read')).toBe(true);
    expect(plain.has('unshare')).toBe(false);
    expect(ociSchemaErrors('oci-runtime-spec/config-schema.json', spec)).toBe('');

    // CapAdd SYS_ADMIN widens the filter as dockerd's does
    const admin = await specOf(te, { CapAdd: ['SYS_ADMIN'] });
    expect(admin.linux!.seccomp!.syscalls!.some((r) => r.action === 'SCMP_ACT_ALLOW' && r.names.includes('unshare'))).toBe(true);
  });

  it('on a host without the x32 ABI (IHost syscallAbis) every filter leaves x32 out, and the log names the architectures', async () => {
    const te = await setup(new FakeHost({ seccomp: true, kernel: '6.18.0', syscallAbis: { x32: false, ia32: true } }));
    expect((await specOf(te)).linux?.seccomp?.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86']);
    const custom = await specOf(te, { SecurityOpt: [`seccomp=${JSON.stringify({ ...JSON.parse(CUSTOM), archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] }] })}`] });
    expect(custom.linux?.seccomp?.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86']);
    const logged = te.logger.entries.find((e) => e.msg === 'seccomp: architectures of the default profile');
    expect(logged?.fields).toMatchObject({ architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'], leftOut: ['SCMP_ARCH_X32'] });
  });

  it('seccomp=unconfined and --privileged: no filter; seccomp=builtin: the default one', async () => {
    const te = await setup();
    expect((await specOf(te, { SecurityOpt: ['seccomp=unconfined'] })).linux?.seccomp).toBeUndefined();
    expect((await specOf(te, { Privileged: true })).linux?.seccomp).toBeUndefined();
    expect((await specOf(te, { Privileged: true, SecurityOpt: [`seccomp=${CUSTOM}`] })).linux?.seccomp).toBeUndefined();
    expect((await specOf(te, { SecurityOpt: ['seccomp=builtin'] })).linux?.seccomp?.defaultAction).toBe('SCMP_ACT_ERRNO');
  });

  it('seccomp=<profile JSON> (what the docker CLI sends for a file): that profile, evaluated for the container', async () => {
    const te = await setup();
    const spec = await specOf(te, { SecurityOpt: [`seccomp=${CUSTOM}`] });
    expect(spec.linux?.seccomp).toEqual({
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'],
      syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }],
    });
    expect(ociSchemaErrors('oci-runtime-spec/config-schema.json', spec)).toBe('');
  });

  it('no-new-privileges is set beside the filter', async () => {
    const te = await setup();
    const spec = await specOf(te, { SecurityOpt: ['no-new-privileges'] });
    expect(spec.process?.noNewPrivileges).toBe(true);
    expect(spec.linux?.seccomp?.defaultAction).toBe('SCMP_ACT_ERRNO');
  });

  it('a bad profile is refused at create with the JSON error (400) and nothing is stored', async () => {
    const te = await setup();
    for (const [profile, message] of [
      ['{"defaultAction": "SCMP_ACT_ERRNO", ', /Decoding seccomp profile failed: .*JSON/],
      ['{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"ALLOW"}]}', /unknown action "ALLOW"/],
    ] as const) {
      const err = await te.createContainer({ name: 'bad', HostConfig: { SecurityOpt: [`seccomp=${profile}`] } }).catch((e: unknown) => e);
      expect(errorKind(err)).toBe('InvalidParameter');
      expect((err as Error).message).toMatch(message);
    }
    expect(te.engine.containers.list()).toEqual([]);
  });

  it('skips itself on a host without seccomp: listed as skipped with the reason, no filter, no security option', async () => {
    const te = await setup(new FakeHost({ seccomp: false }));
    expect(te.engine.plugins.find((p) => p.name === 'seccomp')).toEqual(expect.objectContaining({ status: 'skipped', reason: expect.stringMatching(/seccomp is not enabled in the kernel/) }));
    expect(te.engine.securityOptions()).toEqual([]);
    expect((await specOf(te)).linux?.seccomp).toBeUndefined();
  });
});

describe('seccomp plugin: the daemon default (--seccomp-profile / daemon.json "seccomp-profile")', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  function profileFile(text: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-seccomp-'));
    dirs.push(dir);
    const file = path.join(dir, 'profile.json');
    fs.writeFileSync(file, text);
    return file;
  }

  it('a profile file is the default of containers that name none; seccomp=builtin still names the built-in one; /info names the file', async () => {
    const file = profileFile(CUSTOM);
    const te = await setup(undefined, file);
    expect(te.engine.securityOptions()).toEqual([`name=seccomp,profile=${file}`]);
    const plain = (await specOf(te)).linux?.seccomp;
    expect(plain?.defaultAction).toBe('SCMP_ACT_ALLOW');
    expect(plain?.syscalls).toEqual([{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }]);
    // evaluated per capability set like the built-in one
    const timed = (await specOf(te, { CapAdd: ['SYS_TIME'] })).linux?.seccomp;
    expect(timed?.syscalls?.map((r) => r.names)).toEqual([['mkdir', 'mkdirat'], ['settimeofday']]);
    expect((await specOf(te, { SecurityOpt: ['seccomp=builtin'] })).linux?.seccomp?.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect((await specOf(te, { SecurityOpt: ['seccomp=unconfined'] })).linux?.seccomp).toBeUndefined();
    expect((await specOf(te, { Privileged: true })).linux?.seccomp).toBeUndefined();
  });

  it('"unconfined": containers that name none get no filter; seccomp=builtin gets the built-in one', async () => {
    const te = await setup(undefined, 'unconfined');
    expect(te.engine.securityOptions()).toEqual(['name=seccomp,profile=unconfined']);
    expect((await specOf(te)).linux?.seccomp).toBeUndefined();
    expect((await specOf(te, { SecurityOpt: ['seccomp=builtin'] })).linux?.seccomp?.defaultAction).toBe('SCMP_ACT_ERRNO');
  });

  it('"builtin" is the same as no setting', async () => {
    const te = await setup(undefined, 'builtin');
    expect(te.engine.securityOptions()).toEqual(['name=seccomp,profile=builtin']);
    expect((await specOf(te)).linux?.seccomp?.defaultAction).toBe('SCMP_ACT_ERRNO');
  });

  it('a missing or malformed file stops the engine from starting, naming the file (PluginConfigError)', async () => {
    const missing = path.join(os.tmpdir(), `berth-no-such-profile-${process.pid}.json`);
    await expect(setup(undefined, missing)).rejects.toThrow(`opening seccomp profile (${missing}) failed`);
    const bad = profileFile('{"defaultAction": "SCMP_ACT_NOPE"}');
    const err = await setup(undefined, bad).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(`seccomp profile ${bad}:`);
  });
});
