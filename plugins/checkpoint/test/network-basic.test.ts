/**
 * network-basic's per-container state across checkpoint → restore (its checkpoint hooks):
 * a container's /etc/hosts is a bind mount its process may change; the change is saved into
 * the checkpoint and is what the restored process finds, while a plain start writes the file
 * afresh as always.
 */
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeRuntime, createTestEngine, type TestEngine } from '@berth/testing';
import { networkBasicPlugin } from '@berth/plugin-network-basic';
import { checkpointPlugin } from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

async function setup(): Promise<TestEngine> {
  t = await createTestEngine({ runtime: new FakeRuntime({ features: { checkpoint: true } }), experimental: true });
  const host = join(t.dir, 'host');
  mkdirSync(host);
  writeFileSync(join(host, 'resolv.conf'), 'nameserver 192.0.2.53\n');
  writeFileSync(join(host, 'hosts'), '');
  const config = { hostsFile: join(host, 'hosts'), resolvConfFile: join(host, 'resolv.conf'), systemdResolvConfFile: join(host, 'none'), hostname: 'the-host' };
  await t.restart({ plugins: [networkBasicPlugin({ config }), checkpointPlugin()] });
  return t;
}

describe('network-basic files across checkpoint and restore', () => {
  it("the hosts file as the process left it goes into the checkpoint and is back for the restore; a plain start writes it afresh", async () => {
    const te = await setup();
    const id = await te.createContainer({ name: 'net', HostConfig: { ExtraHosts: ['db:192.0.2.10'] } });
    await te.engine.containers.start(id);
    const hosts = te.engine.containers.get(id).HostsPath!;
    expect(hosts).toBe(join(te.engine.config.dataRoot, 'containers', id, 'hosts'));
    // what the container's process did to its /etc/hosts (a bind mount of this file)
    appendFileSync(hosts, '192.0.2.99\tadded-inside\n');

    await te.engine.checkpoints.create(id, { name: 'cp1', exit: true });
    const saved = join(te.engine.config.dataRoot, 'containers', id, 'checkpoints', 'cp1', 'berth', 'network-basic');
    expect(readFileSync(join(saved, 'hosts'), 'utf8')).toContain('192.0.2.99\tadded-inside');
    expect(readFileSync(join(saved, 'resolv.conf'), 'utf8')).toContain('nameserver 192.0.2.53');

    await te.engine.containers.start(id, { checkpoint: 'cp1' });
    const restored = readFileSync(hosts, 'utf8');
    expect(restored).toContain('192.0.2.99\tadded-inside');
    expect(restored).toContain('192.0.2.10\tdb');

    await te.engine.containers.stop(id, { timeout: 0 });
    await te.engine.containers.start(id);
    const fresh = readFileSync(hosts, 'utf8');
    expect(fresh).not.toContain('added-inside');
    expect(fresh).toContain('192.0.2.10\tdb');
  });
});
