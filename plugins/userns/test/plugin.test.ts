/**
 * The userns plugin alone in an engine on the fake runtime (no root; the rootfs step is a
 * recording strategy, the chown one is ownership.test.ts's): the spec's user namespace and
 * maps, the mapped root handed to the backend, --userns=host, UsernsMode=auto (200 containers
 * created and removed: each its own slice, all freed), refusals (bad mode, --privileged) that
 * store nothing, /info's security option, the skip without --userns-remap and the start
 * failure on a bad subuid file.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Stage, definePlugin, errorKind, type HostConfig } from '@berth/core';
import { createTestEngine, ociSchemaErrors, type TestEngine } from '@berth/testing';
import { AUTO_FILE, AUTO_SIZE, usernsPlugin, type IdFiles, type IdMaps, type RootfsStrategy } from '../src/index.js';

let t: TestEngine | undefined;
let dir: string;
let files: IdFiles;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'userns-plugin-'));
  files = { passwd: join(dir, 'passwd'), group: join(dir, 'group'), subuid: join(dir, 'subuid'), subgid: join(dir, 'subgid') };
  await writeFile(files.passwd, 'remap:x:990:990::/:/bin/false\n');
  await writeFile(files.group, 'remap:x:990:\n');
  await writeFile(files.subuid, `remap:100000:${256 * AUTO_SIZE}\n`);
  await writeFile(files.subgid, `990:300000:${256 * AUTO_SIZE}\n`);
});
afterEach(async () => {
  await t?.dispose();
  t = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** Records what the rootfs step was asked to do. */
function recordingRootfs(): RootfsStrategy & { calls: Array<{ rootfs: string; maps: IdMaps }> } {
  const calls: Array<{ rootfs: string; maps: IdMaps }> = [];
  return { name: 'test', calls, prepare: async (rootfs, maps) => void calls.push({ rootfs, maps }) };
}

async function setup(remap: string | null = 'remap', rootfs = recordingRootfs()) {
  t = await createTestEngine({ plugins: [usernsPlugin({ config: { ...(remap ? { remap } : {}), files }, rootfs })] });
  return { te: t, rootfs };
}

async function started(te: TestEngine, hc: HostConfig = {}) {
  const id = await te.createContainer({ HostConfig: hc });
  await te.engine.containers.start(id);
  return te.fake.containers.get(id)!;
}

describe('userns plugin', () => {
  it('a container runs in a user namespace with the remap user’s maps; the backend gets the mapped root', async () => {
    const { te, rootfs } = await setup();
    expect(te.engine.securityOptions()).toEqual(['name=userns,rootfs=test']);
    const c = await started(te);
    expect(c.spec.linux?.namespaces?.filter((n) => n.type === 'user')).toEqual([{ type: 'user' }]);
    expect(c.spec.linux?.uidMappings).toEqual([{ containerID: 0, hostID: 100000, size: 256 * AUTO_SIZE }]);
    expect(c.spec.linux?.gidMappings).toEqual([{ containerID: 0, hostID: 300000, size: 256 * AUTO_SIZE }]);
    expect([c.options.rootUid, c.options.rootGid]).toEqual([100000, 300000]);
    expect(rootfs.calls.map((x) => x.rootfs)).toEqual([te.rootfs]);
    expect(ociSchemaErrors('oci-runtime-spec/config-schema.json', c.spec)).toBe('');
  });

  it('the default ping_group_range is cut to the mapped groups (the kernel refuses unmapped ones); one the container set is kept', async () => {
    const { te } = await setup();
    const def = await started(te);
    expect(def.spec.linux?.sysctl?.['net.ipv4.ping_group_range']).toBe(`0 ${256 * AUTO_SIZE - 1}`);
    const own = await started(te, { Sysctls: { 'net.ipv4.ping_group_range': '1 2' } });
    expect(own.spec.linux?.sysctl?.['net.ipv4.ping_group_range']).toBe('1 2');
    const host = await started(te, { UsernsMode: 'host' });
    expect(host.spec.linux?.sysctl?.['net.ipv4.ping_group_range']).toBe('0 2147483647');
  });

  it('--userns=host opts out: no user namespace, root is root, the rootfs goes back to the identity', async () => {
    const { te, rootfs } = await setup();
    const c = await started(te, { UsernsMode: 'host' });
    expect(c.spec.linux?.namespaces?.some((n) => n.type === 'user')).toBe(false);
    expect(c.spec.linux?.uidMappings).toBeUndefined();
    expect([c.options.rootUid, c.options.rootGid]).toEqual([0, 0]);
    expect(rootfs.calls[0]!.maps).toEqual({ uidMappings: [], gidMappings: [] });
    // --privileged is allowed with --userns=host
    await started(te, { UsernsMode: 'host', Privileged: true });
  });

  it('refuses an unknown UsernsMode and --privileged without --userns=host (400, nothing stored)', async () => {
    const { te } = await setup();
    for (const hc of [{ UsernsMode: 'private' }, { Privileged: true }] as HostConfig[]) {
      const err = await te.createContainer({ name: 'refused', HostConfig: hc }).catch((e: unknown) => e);
      expect(errorKind(err)).toBe('InvalidParameter');
      expect(te.engine.containers.list().map((c) => c.Name)).not.toContain('/refused');
    }
    await te.createContainer({ name: 'refused', HostConfig: { UsernsMode: 'host', Privileged: true } });
    expect(te.engine.containers.list().map((c) => c.Name)).toContain('/refused');
  });

  it('UsernsMode=auto: 200 containers, each its own 65536-id slice, all freed at removal', async () => {
    const { te } = await setup();
    const ids: string[] = [];
    const hostStarts = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const id = await te.createContainer({ HostConfig: { UsernsMode: 'auto' } });
      ids.push(id);
    }
    const table = JSON.parse(await readFile(join(te.dataRoot, AUTO_FILE), 'utf8')) as Record<string, number>;
    expect(Object.keys(table).sort()).toEqual([...ids].sort());
    expect(new Set(Object.values(table)).size).toBe(200);
    for (const id of ids.slice(0, 3)) {
      await te.engine.containers.start(id);
      const spec = te.fake.containers.get(id)!.spec;
      expect(spec.linux?.uidMappings).toEqual([{ containerID: 0, hostID: 100000 + table[id]! * AUTO_SIZE, size: AUTO_SIZE }]);
      hostStarts.add(spec.linux!.uidMappings![0]!.hostID);
      await te.engine.containers.kill(id, 'SIGKILL');
    }
    expect(hostStarts.size).toBe(3);
    for (const id of ids) await te.engine.containers.remove(id, { force: true });
    expect(JSON.parse(await readFile(join(te.dataRoot, AUTO_FILE), 'utf8'))).toEqual({});
  }, 120_000);

  it('a create refused after the auto slice was taken gives the slice back (the create’s undo)', async () => {
    const refuser = definePlugin({
      name: 'refuser',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.beforeCreate.tapPromise({ name: 'refuser', stage: Stage.FINAL }, async (c) => {
          if (c.container.Config.Labels?.refuse === 'yes') throw new Error('refused by a later plugin');
        });
      },
    });
    t = await createTestEngine({ plugins: [usernsPlugin({ config: { remap: 'remap', files }, rootfs: recordingRootfs() }), refuser] });
    const err = await t.createContainer({ Config: { Labels: { refuse: 'yes' } }, HostConfig: { UsernsMode: 'auto' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(JSON.parse(await readFile(join(t.dataRoot, AUTO_FILE), 'utf8'))).toEqual({});
    const ok = await t.createContainer({ HostConfig: { UsernsMode: 'auto' } });
    expect(JSON.parse(await readFile(join(t.dataRoot, AUTO_FILE), 'utf8'))).toEqual({ [ok]: 0 });
  });

  it('without --userns-remap the plugin skips itself and changes nothing', async () => {
    const { te, rootfs } = await setup(null);
    expect(te.engine.plugins.find((p) => p.name === 'userns')).toMatchObject({ status: 'skipped' });
    expect(te.engine.securityOptions()).toEqual([]);
    const c = await started(te);
    expect(c.spec.linux?.uidMappings).toBeUndefined();
    expect(rootfs.calls).toEqual([]);
  });

  it('a bad subuid line fails the engine’s start, naming the file and line', async () => {
    await writeFile(files.subuid, 'remap:100000:65536\nremap:oops\n');
    const err = await setup().catch((e: unknown) => e);
    expect(String((err as Error).message)).toContain(`${files.subuid}:2: malformed entry`);
  });
});
