/**
 * The AppArmor plugin through the real docker CLI against berthd (runc + conmon).
 * On a host without AppArmor (no /sys/module/apparmor/parameters/enabled = Y): the plugin is
 * listed as skipped with its reason in /info, `docker info` shows no name=apparmor, a default
 * container runs with an empty AppArmorProfile, `--security-opt apparmor=NAME` is refused at
 * create with a 400 naming the option, and apparmor=unconfined runs.
 * On a host with AppArmor: a default container runs confined by berth-default (its
 * /proc/self/attr/current and inspect's AppArmorProfile), privileged and apparmor=unconfined
 * run unconfined, and an unknown profile fails the start.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, type Berthd } from './helpers/berthd.js';
import { useBerthdWithTestImage } from './helpers/shared-berthd.js';

const skip = berthdSkipReason();
const hostHasAppArmor = (() => {
  try {
    return fs.readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim() === 'Y';
  } catch {
    return false;
  }
})();
const withoutAppArmor = hostHasAppArmor ? 'the host has AppArmor' : null;
const withAppArmor = hostHasAppArmor ? null : 'the host kernel has no AppArmor';

describe.skipIf(skip)(`apparmor through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  useBerthdWithTestImage((b) => (d = b), { beforeCleanup: (b) => b.docker(['rm', '-f', 'aa-default', 'aa-bad']) });

  const info = async () => JSON.parse((await d.api('GET', '/info')).body) as { SecurityOptions: string[]; BerthPlugins?: Array<{ Name: string; Status: string; Reason?: string }> };

  describe.skipIf(withoutAppArmor)(`without AppArmor${withoutAppArmor ? ` (skipped: ${withoutAppArmor})` : ''}`, () => {
    it('the plugin is skipped with its reason; no name=apparmor in docker info', async () => {
      const i = await info();
      expect(i.BerthPlugins?.find((p) => p.Name === 'apparmor')).toEqual({ Name: 'apparmor', Type: 'io.berth.security.v1', Status: 'skipped', Reason: expect.stringMatching(/AppArmor is not enabled on this host/) });
      const r = await d.docker(['info', '--format', '{{json .SecurityOptions}}']);
      expect(r.code, r.stderr).toBe(0);
      expect((JSON.parse(r.stdout) as string[]).filter((o) => o.startsWith('name=apparmor'))).toEqual([]);
      expect(d.log()).toMatch(/skip loading plugin.*apparmor|apparmor.*skip loading plugin/);
    }, 60_000);

    it('a default container runs with an empty AppArmorProfile; apparmor=unconfined runs', async () => {
      const r = await d.docker(['run', '--name', 'aa-default', '--network', 'none', TEST_IMAGE, 'true']);
      expect(r.code, r.stderr).toBe(0);
      expect((await d.docker(['inspect', '-f', '{{.AppArmorProfile}}', 'aa-default'])).stdout.trim()).toBe('');
      const u = await d.docker(['run', '--rm', '--network', 'none', '--security-opt', 'apparmor=unconfined', TEST_IMAGE, 'true']);
      expect(u.code, u.stderr).toBe(0);
    }, 60_000);

    it('apparmor=NAME is refused at create with a clear message (400), no container is made', async () => {
      const r = await d.docker(['run', '--name', 'aa-bad', '--security-opt', 'apparmor=docker-default', TEST_IMAGE, 'true']);
      expect(r.code).toBe(125);
      expect(r.stderr).toMatch(/apparmor=docker-default: AppArmor is not enabled on this daemon/);
      const api = await d.api('POST', '/containers/create?name=aa-bad', { Image: TEST_IMAGE, Cmd: ['true'], HostConfig: { SecurityOpt: ['apparmor=docker-default'] } });
      expect(api.status).toBe(400);
      expect((await d.docker(['ps', '-a', '--filter', 'name=aa-bad', '-q'])).stdout.trim()).toBe('');
    }, 60_000);
  });

  describe.skipIf(withAppArmor)(`with AppArmor${withAppArmor ? ` (skipped: ${withAppArmor})` : ''}`, () => {
    it('name=apparmor in docker info; a default container is confined by berth-default', async () => {
      expect((await info()).SecurityOptions).toContain('name=apparmor');
      const r = await d.docker(['run', '--name', 'aa-default', '--network', 'none', TEST_IMAGE, 'cat', '/proc/self/attr/current']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^berth-default \(enforce\)/);
      expect((await d.docker(['inspect', '-f', '{{.AppArmorProfile}}', 'aa-default'])).stdout.trim()).toBe('berth-default');
    }, 60_000);

    it('apparmor=unconfined runs unconfined; an unknown profile fails the start and leaves the container created', async () => {
      const u = await d.docker(['run', '--rm', '--network', 'none', '--security-opt', 'apparmor=unconfined', TEST_IMAGE, 'cat', '/proc/self/attr/current']);
      expect(u.code, u.stderr).toBe(0);
      expect(u.stdout.trim()).toBe('unconfined');
      const bad = await d.docker(['run', '--name', 'aa-bad', '--security-opt', 'apparmor=berth-no-such-profile', TEST_IMAGE, 'true']);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/berth-no-such-profile.*is not loaded/);
      expect((await d.docker(['inspect', '-f', '{{.State.Status}}', 'aa-bad'])).stdout.trim()).toBe('created');
    }, 60_000);
  });
});
