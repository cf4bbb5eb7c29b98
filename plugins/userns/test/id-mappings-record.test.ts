/**
 * The container record keeps the ID mappings of its last start (core's start step copies the
 * final spec's uid/gid maps into `IdMappings`, saved with the record), so docker cp, export and
 * commit of a stopped remapped container can translate owners; --userns=host records none.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CONFIG_FILE, type ContainerRecord } from '@berth/core';
import { createTestEngine, type TestEngine } from '@berth/testing';
import { usernsPlugin, type IdFiles, type RootfsStrategy } from '../src/index.js';

let t: TestEngine | undefined;
let dir: string;
let files: IdFiles;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'userns-idmappings-'));
  files = { passwd: join(dir, 'passwd'), group: join(dir, 'group'), subuid: join(dir, 'subuid'), subgid: join(dir, 'subgid') };
  await writeFile(files.passwd, 'remap:x:990:990::/:/bin/false\n');
  await writeFile(files.group, 'remap:x:990:\n');
  await writeFile(files.subuid, 'remap:100000:65536\n');
  await writeFile(files.subgid, 'remap:200000:65536\n');
});
afterEach(async () => {
  await t?.dispose();
  t = undefined;
  await rm(dir, { recursive: true, force: true });
});

const rootfs: RootfsStrategy = { name: 'test', prepare: async () => undefined };

async function saved(te: TestEngine, id: string): Promise<ContainerRecord> {
  return JSON.parse(await readFile(join(te.dataRoot, 'containers', id, CONFIG_FILE), 'utf8')) as ContainerRecord;
}

describe('IdMappings on the container record', () => {
  it('a remapped start records its maps, saved and kept after the container exits', async () => {
    t = await createTestEngine({ plugins: [usernsPlugin({ config: { remap: 'remap', files }, rootfs })] });
    const id = await t.createContainer({});
    const want = { uid: [{ containerID: 0, hostID: 100000, size: 65536 }], gid: [{ containerID: 0, hostID: 200000, size: 65536 }] };
    await t.engine.containers.start(id);
    expect(t.engine.containers.inspect(id).IdMappings).toEqual(want);
    await t.engine.containers.kill(id, 'SIGKILL');
    await t.engine.containers.wait(id);
    expect(t.engine.containers.inspect(id).State.Running).toBe(false);
    expect(t.engine.containers.inspect(id).IdMappings).toEqual(want);
    expect((await saved(t, id)).IdMappings).toEqual(want);
  });

  it('a container never started already has its maps (docker cp into it maps owners as dockerd)', async () => {
    t = await createTestEngine({ plugins: [usernsPlugin({ config: { remap: 'remap', files }, rootfs })] });
    const id = await t.createContainer({});
    const want = { uid: [{ containerID: 0, hostID: 100000, size: 65536 }], gid: [{ containerID: 0, hostID: 200000, size: 65536 }] };
    expect(t.engine.containers.inspect(id).IdMappings).toEqual(want);
    expect((await saved(t, id)).IdMappings).toEqual(want);
    const auto = await t.createContainer({ HostConfig: { UsernsMode: 'auto' } });
    const slice = t.engine.containers.inspect(auto).IdMappings;
    expect(slice?.uid).toHaveLength(1);
    expect(slice?.uid[0]?.size).toBe(65536);
    expect(slice?.uid[0]?.containerID).toBe(0);
    await t.engine.containers.start(auto);
    expect(t.engine.containers.inspect(auto).IdMappings).toEqual(slice);
  });

  it('--userns=host records none', async () => {
    t = await createTestEngine({ plugins: [usernsPlugin({ config: { remap: 'remap', files }, rootfs })] });
    const id = await t.createContainer({ HostConfig: { UsernsMode: 'host' } });
    expect(t.engine.containers.inspect(id).IdMappings).toBeUndefined();
    await t.engine.containers.start(id);
    expect(t.engine.containers.inspect(id).IdMappings).toBeUndefined();
  });
});
