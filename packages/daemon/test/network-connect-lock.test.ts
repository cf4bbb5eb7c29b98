/**
 * POST /networks/{id}/connect through the engine port (engine-port.ts) takes the container's
 * lock, as start and stop do: a connect that arrives while a stop is in progress (the stop
 * holds the lock while it waits for the exit) runs after the stop, on the stopped container
 * (the request recorded, no interface ADDed into a namespace being released). The network-cni
 * plugin runs on a FakeRuntime with an in-process fake of the CNI bridge plugin (no root).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestEngine, type TestEngine } from '@berth/testing';
import { networkBasicPlugin } from '@berth/plugin-network-basic';
import { networkCniPlugin, type CniExec } from '@berth/plugin-network-cni';
import { enginePort } from '../src/index.js';
import { facts } from './helpers/fake-port.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

/** The bridge plugin, faked: ADD hands out .2, .3, … of the network's subnet; DEL answers nothing. */
function fakeBridge(adds: string[]): CniExec {
  let next = 2;
  return async (_binary, env, stdin) => {
    if (env.CNI_COMMAND !== 'ADD') return { code: 0, stdout: '', stderr: '' };
    adds.push(env.CNI_IFNAME);
    const conf = JSON.parse(stdin) as { ipam: { ranges: Array<Array<{ subnet: string }>> } };
    const [base, prefix] = conf.ipam.ranges[0][0].subnet.split('/');
    const ip = `${base.split('.').slice(0, 3).join('.')}.${next++}`;
    return { code: 0, stdout: JSON.stringify({ cniVersion: '1.0.0', interfaces: [{ name: env.CNI_IFNAME, mac: '0a:58:00:00:00:01', sandbox: env.CNI_NETNS }], ips: [{ address: `${ip}/${prefix}`, interface: 0 }] }), stderr: '' };
  };
}

describe('network connect and the container lock', () => {
  it('a connect during a stop waits for the stop, then records the request on the stopped container', async () => {
    t = await createTestEngine({ plugins: [] });
    const host = path.join(t.dir, 'host');
    mkdirSync(host, { recursive: true });
    writeFileSync(path.join(host, 'resolv.conf'), 'nameserver 10.9.9.9\n');
    writeFileSync(path.join(host, 'route'), 'Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n');
    const adds: string[] = [];
    const cni = networkCniPlugin({
      config: { bip: '198.18.30.1/24' },
      exec: fakeBridge(adds),
      skipHostChecks: true,
      routesFile: path.join(host, 'route'),
      netns: { create: async () => undefined, bind: async () => undefined, remove: async () => undefined },
      publishing: { dnsPort: 0, resolvConf: path.join(host, 'resolv.conf') },
    });
    await t.restart({ plugins: [cni, networkBasicPlugin({ config: { resolvConfFile: path.join(host, 'resolv.conf'), hostsFile: path.join(host, 'hosts') } })] });
    const port = enginePort(t.engine, { facts: facts() });
    await port.networks!.create({ Name: 'late', IPAM: { Config: [{ Subnet: '198.18.31.0/24' }] } });
    const id = await t.createContainer({ Config: { Cmd: ['/bin/true'] } });
    t.fake.script(id, { ignoreSignals: [15] }); // the stop waits its timeout, holding the lock
    await t.engine.containers.start(id);
    expect(adds).toEqual(['eth0']);

    const order: string[] = [];
    const stopping = t.engine.containers.stop(id, { timeout: 1 }).then(() => order.push('stopped'));
    await new Promise((r) => setImmediate(r)); // the stop has the lock now
    const connecting = port.networks!.connect('late', id, undefined).then(() => order.push('connected'));
    await Promise.all([stopping, connecting]);
    await t.engine.containers.idle();

    expect(order).toEqual(['stopped', 'connected']);
    expect(adds).toEqual(['eth0']); // nothing ADDed into the namespace the stop released
    const rec = t.engine.containers.inspect(id);
    expect(rec.State.Running).toBe(false);
    expect(Object.keys(rec.NetworkSettings.Networks).sort()).toEqual(['bridge', 'late']);
    expect(rec.NetworkSettings.Networks.late.IPAddress ?? '').toBe('');
  });
});
