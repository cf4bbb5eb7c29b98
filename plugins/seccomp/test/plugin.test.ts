/**
 * The seccomp plugin alone in an engine on the fake runtime (no root): the spec of a default,
 * an unconfined, a privileged and a custom-profile container, a bad profile refused at create
 * (nothing stored), no-new-privileges beside the filter, /info's security option, and the skip
 * path on a host without seccomp.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { IHost, errorKind, type HostConfig } from '@berth/core';
import { FakeHost, createTestEngine, ociSchemaErrors, type TestEngine } from '@berth/testing';
import { seccompPlugin } from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

async function setup(host: FakeHost = new FakeHost({ seccomp: true, kernel: '6.18.0' })): Promise<TestEngine> {
  t = await createTestEngine({
    plugins: [seccompPlugin({ config: { arch: 'amd64' } })],
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
