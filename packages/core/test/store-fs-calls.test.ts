/**
 * The state store's file-system calls per save (issue 18: every round trip runs through the
 * daemon's one JS thread): a container's directory is made once, not at every save, and a
 * directory removed behind the store's back is made again.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileStateStore, type ContainerRecord } from '../src/index.js';

const calls = vi.hoisted(() => ({ mkdir: 0 }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const mkdir: typeof real.mkdir = ((...args: Parameters<typeof real.mkdir>) => {
    calls.mkdir++;
    return real.mkdir(...args);
  }) as typeof real.mkdir;
  return { ...real, mkdir, default: { ...real, mkdir } };
});

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'berth-store-calls-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const ID = 'a'.repeat(64);
const record = (status: string) => ({ ID, Name: '/c', State: { Status: status }, HostConfig: { NetworkMode: 'none' } }) as unknown as ContainerRecord;

describe('state store: file-system calls per save', () => {
  it('makes the directory at the first save only (10 saves: 1 mkdir, 10 before)', async () => {
    const store = new FileStateStore(root);
    await store.loadAll();
    calls.mkdir = 0;
    for (let i = 0; i < 10; i++) await store.save(record(`s${i}`));
    expect(calls.mkdir).toBe(1);
    expect(JSON.parse(await readFile(join(store.dir(ID), 'config.v2.json'), 'utf8')).State.Status).toBe('s9');
  });

  it('a directory made by makeDir (a create, before its first save) is not made again by the save', async () => {
    const store = new FileStateStore(root);
    await store.loadAll();
    calls.mkdir = 0;
    await store.makeDir(ID);
    await store.save(record('created'));
    expect(calls.mkdir).toBe(1);
  });

  it('a loaded container is saved without a mkdir', async () => {
    await new FileStateStore(root).save(record('created'));
    const again = new FileStateStore(root);
    expect((await again.loadAll()).records.map((r) => r.ID)).toEqual([ID]);
    calls.mkdir = 0;
    await again.save(record('running'));
    expect(calls.mkdir).toBe(0);
  });

  it('a directory removed behind its back is made again; a removed container stays removed', async () => {
    const store = new FileStateStore(root);
    await store.save(record('created'));
    await rm(store.dir(ID), { recursive: true });
    await store.save(record('running'));
    expect(JSON.parse(await readFile(join(store.dir(ID), 'config.v2.json'), 'utf8')).State.Status).toBe('running');
    await store.remove(ID);
    await store.save(record('exited'));
    expect((await new FileStateStore(root).loadAll()).records).toEqual([]);
  });
});
