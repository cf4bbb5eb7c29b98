/**
 * Masquerading (dockerd's --ip-masq and the bridge option enable_ip_masquerade) on the fake CNI
 * plugins, no root: berth's default bridge and user networks do not masquerade unless told to
 * (dockerd's do); `ipMasq: true` reaches the bridge plugin for the default bridge with
 * --ip-masq and for a user network whose option is true, never for an internal network; a value
 * that is not a boolean is a 400. Real traffic off the machine is never sent by a test (the
 * machine's rule), so the rule the bridge plugin installs is not exercised here.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import { disposeEngine, run, setup } from './harness.js';

afterEach(disposeEngine);

const OPT = 'com.docker.network.bridge.enable_ip_masquerade';

describe('ip masquerading', () => {
  it('default bridge: off by default, on with ipMasq (--ip-masq); the option shows it as dockerd', async () => {
    const off = await setup();
    expect((await off.svc.inspect('bridge')).Options[OPT]).toBe('false');
    await run(off.te);
    expect(off.cni.calls.find((c) => c.type === 'bridge' && c.cmd === 'ADD')!.conf).toMatchObject({ ipMasq: false });
    await disposeEngine();

    const on = await setup({ ipMasq: true });
    expect((await on.svc.inspect('bridge')).Options[OPT]).toBe('true');
    await run(on.te);
    expect(on.cni.calls.find((c) => c.type === 'bridge' && c.cmd === 'ADD')!.conf).toMatchObject({ ipMasq: true });
  });

  it('user networks: on only where the option says true, never when internal; a bad value is a 400', async () => {
    const { te, cni, svc } = await setup();
    await svc.create({ Name: 'plain' });
    await svc.create({ Name: 'masq', Options: { [OPT]: 'true' } });
    await svc.create({ Name: 'inner', Internal: true, Options: { [OPT]: '1' } });
    expect(errorKind(await svc.create({ Name: 'bad', Options: { [OPT]: 'yes' } }).catch((e: unknown) => e))).toBe('InvalidParameter');
    expect((await svc.list()).map((n) => n.Name)).not.toContain('bad');
    const masqOf = async (network: string) => {
      const before = cni.calls.length;
      await run(te, { NetworkMode: network });
      return (cni.calls.slice(before).find((c) => c.type === 'bridge' && c.cmd === 'ADD')!.conf as { ipMasq?: boolean }).ipMasq;
    };
    expect(await masqOf('plain')).toBe(false);
    expect(await masqOf('masq')).toBe(true);
    expect(await masqOf('inner')).toBe(false);
  });

  it('a config ipMasq that is not a boolean stops the plugin (PluginConfigError)', async () => {
    await expect(setup({ ipMasq: 'yes' as unknown as boolean })).rejects.toThrow(/ipMasq/);
  });
});
