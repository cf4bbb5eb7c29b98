/**
 * The AppArmor plugin alone in an engine on the fake runtime, with a faked host that has
 * AppArmor (IHost probe + a fake AppArmorHost recording loads): berth-default is written and
 * loaded once per engine start, the spec's process.apparmorProfile and the record's
 * AppArmorProfile for default, privileged, apparmor=unconfined and apparmor=NAME containers,
 * an unknown profile failing the start with a 400 and a rollback, a failed load retried; and
 * the skip path on a host without AppArmor.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IHost, errorKind, type HostConfig } from '@berth/core';
import { FakeHost, createTestEngine, type TestEngine } from '@berth/testing';
import { apparmorPlugin, type AppArmorHost } from '../src/index.js';

class FakeAppArmor implements AppArmorHost {
  readonly loads: Array<{ file: string; text: string }> = [];
  failLoads = 0;
  constructor(readonly profiles = new Set<string>(['some-operator-profile'])) {}
  async loadedProfiles() {
    return new Set([...this.profiles, ...this.loads.map(() => 'berth-default')]);
  }
  async load(file: string) {
    if (this.failLoads > 0) {
      this.failLoads--;
      throw new Error('apparmor_parser: exit status 1');
    }
    this.loads.push({ file, text: await readFile(file, 'utf8') });
  }
  async daemonProfile() {
    return 'unconfined';
  }
  async hasInclude() {
    return true;
  }
}

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

async function setup(aa: FakeAppArmor = new FakeAppArmor(), hostHasAppArmor = true): Promise<TestEngine> {
  t = await createTestEngine({
    plugins: [apparmorPlugin({ host: aa })],
    providers: (c) => c.register(IHost, { useValue: new FakeHost({ apparmor: hostHasAppArmor }) }),
  });
  return t;
}

async function run(te: TestEngine, hc: HostConfig = {}) {
  const id = await te.createContainer({ HostConfig: hc });
  await te.engine.containers.start(id);
  return { spec: te.fake.containers.get(id)!.spec!, rec: te.engine.containers.inspect(id) };
}

describe('apparmor plugin (host with AppArmor, faked)', () => {
  it('loads berth-default once per engine start and confines a default container with it', async () => {
    const aa = new FakeAppArmor();
    const te = await setup(aa);
    expect(te.engine.securityOptions()).toEqual(['name=apparmor']);
    expect(aa.loads.map((l) => l.file)).toEqual([join(te.execRoot, 'apparmor', 'berth-default')]);
    expect(aa.loads[0].text).toMatch(/^profile berth-default flags=/m);
    const a = await run(te);
    const b = await run(te);
    for (const { spec, rec } of [a, b]) {
      expect(spec.process?.apparmorProfile).toBe('berth-default');
      expect(rec.AppArmorProfile).toBe('berth-default');
    }
    expect(aa.loads).toHaveLength(1);
    await te.restart();
    expect(aa.loads).toHaveLength(2);
  });

  it('--privileged and apparmor=unconfined: no profile in the spec, AppArmorProfile "unconfined" (as dockerd)', async () => {
    const te = await setup();
    for (const hc of [{ Privileged: true }, { SecurityOpt: ['apparmor=unconfined'] }]) {
      const { spec, rec } = await run(te, hc);
      expect(spec.process).not.toHaveProperty('apparmorProfile');
      expect(rec.AppArmorProfile).toBe('unconfined');
    }
  });

  it('apparmor=NAME of a loaded profile: that profile (also with --privileged, as dockerd)', async () => {
    const te = await setup();
    for (const hc of [{ SecurityOpt: ['apparmor=some-operator-profile'] }, { Privileged: true, SecurityOpt: ['apparmor=some-operator-profile'] }]) {
      const { spec, rec } = await run(te, hc);
      expect(spec.process?.apparmorProfile).toBe('some-operator-profile');
      expect(rec.AppArmorProfile).toBe('some-operator-profile');
    }
  });

  it('apparmor=NAME of a profile that is not loaded: the start fails with a 400 naming it, and is rolled back', async () => {
    const te = await setup();
    const id = await te.createContainer({ HostConfig: { SecurityOpt: ['apparmor=no-such-profile'] } });
    const err = await te.engine.containers.start(id).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('InvalidParameter');
    expect((err as Error).message).toMatch(/AppArmor profile "no-such-profile" .*is not loaded/);
    const rec = te.engine.containers.inspect(id);
    expect(rec.State.Running).toBe(false);
    expect(rec.State.Error).toMatch(/no-such-profile/);
    expect(te.fake.containers.has(id)).toBe(false);
  });

  it('a profile name with blanks is refused at create', async () => {
    const te = await setup();
    const err = await te.createContainer({ HostConfig: { SecurityOpt: ['apparmor=a b'] } }).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('InvalidParameter');
    expect(te.engine.containers.list()).toEqual([]);
  });

  it('a failed load at engine start is logged and tried again by the next start that needs it', async () => {
    const aa = new FakeAppArmor();
    aa.failLoads = 2;
    const te = await setup(aa);
    expect(te.logger.entries.some((e) => e.level === 'error' && /berth-default profile could not be loaded/.test(e.msg))).toBe(true);
    const id = await te.createContainer();
    const err = await te.engine.containers.start(id).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/exit status 1/);
    expect(te.fake.containers.has(id)).toBe(false);
    // unconfined containers do not need it
    expect((await run(te, { Privileged: true })).spec.process).not.toHaveProperty('apparmorProfile');
    await te.engine.containers.start(id);
    expect(te.fake.containers.get(id)!.spec!.process?.apparmorProfile).toBe('berth-default');
    expect(aa.loads).toHaveLength(1);
  });
});

describe('apparmor plugin on a host without AppArmor', () => {
  it('skips itself with the reason: no security option, no profile, AppArmorProfile stays empty', async () => {
    const aa = new FakeAppArmor();
    const te = await setup(aa, false);
    expect(te.engine.plugins.find((p) => p.name === 'apparmor')).toEqual(
      expect.objectContaining({ status: 'skipped', reason: expect.stringMatching(/AppArmor is not enabled on this host/) }),
    );
    expect(te.engine.securityOptions()).toEqual([]);
    expect(aa.loads).toEqual([]);
    const { spec, rec } = await run(te);
    expect(spec.process).not.toHaveProperty('apparmorProfile');
    expect(rec.AppArmorProfile).toBe('');
  });

  it('apparmor=NAME is refused at create with a 400 naming the option; apparmor=unconfined is accepted', async () => {
    const te = await setup(new FakeAppArmor(), false);
    const err = await te.createContainer({ name: 'confined', HostConfig: { SecurityOpt: ['apparmor=docker-default'] } }).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('InvalidParameter');
    expect((err as Error).message).toMatch(/apparmor=docker-default: AppArmor is not enabled on this daemon/);
    expect(te.engine.containers.list()).toEqual([]);
    const { rec } = await run(te, { SecurityOpt: ['apparmor=unconfined'] });
    expect(rec.State.Running).toBe(true);
  });
});
