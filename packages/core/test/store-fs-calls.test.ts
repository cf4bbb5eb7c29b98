/**
 * The state store's file-system round trips per save (issue 18: every round trip runs through
 * the daemon's one JS thread). With the native addon a save is ONE thread-pool job (writeFiles:
 * the directory when not made yet, both files, fsyncs, renames) and no Node fs call; without it,
 * Node's fs calls, the directory made once, not at every save. Either way a directory removed
 * behind the store's back is made again. A remove is one removeTrees job with the addon (issue
 * 12), Node's fs.rm without.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileStateStore, type ContainerRecord } from '../src/index.js';

const calls = vi.hoisted(() => ({ mkdir: 0, open: 0, rename: 0, rm: 0, jobs: [] as { dirs: unknown[]; files: string[] }[], removes: [] as string[][], addon: true, loaded: false }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const counted = <K extends 'mkdir' | 'open' | 'rename' | 'rm'>(name: K) =>
    ((...args: unknown[]) => {
      calls[name]++;
      return (real[name] as (...a: unknown[]) => unknown)(...args);
    }) as (typeof real)[K];
  const over = { mkdir: counted('mkdir'), open: counted('open'), rename: counted('rename'), rm: counted('rm') };
  return { ...real, ...over, default: { ...real, ...over } };
});
vi.mock('@berth/native', async (importOriginal) => {
  const real = await importOriginal<typeof import('@berth/native')>();
  const addon = real.nativeAddon();
  calls.loaded = addon !== null;
  const counted: typeof addon = addon && {
    ...addon,
    writeFiles: (dirs, dir, files, mode, flags) => {
      calls.jobs.push({ dirs, files: files.map(([name]) => name) });
      return addon.writeFiles(dirs, dir, files, mode, flags);
    },
    removeTrees: (paths) => {
      calls.removes.push(paths);
      return addon.removeTrees(paths);
    },
  };
  return { ...real, nativeAddon: () => (calls.addon ? counted : null) };
});
await import('@berth/native');

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'berth-store-calls-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const ID = 'a'.repeat(64);
const record = (status: string) => ({ ID, Name: '/c', State: { Status: status }, HostConfig: { NetworkMode: 'none' } }) as unknown as ContainerRecord;
const reset = () => Object.assign(calls, { mkdir: 0, open: 0, rename: 0, rm: 0, jobs: [], removes: [] });
const fsCalls = () => calls.mkdir + calls.open + calls.rename + calls.rm;

const addonSkip = () => (calls.loaded ? null : 'native addon not loaded (not built)');
if (addonSkip()) console.warn(`state store through the addon skipped: ${addonSkip()}`);

describe('state store with the native addon: one thread-pool job per save', () => {
  beforeEach(({ skip }) => {
    const why = addonSkip();
    if (why) skip(why);
    calls.addon = true;
  });

  it('a save is one job and no Node fs call; the first makes the directory in that job, later ones do not', async () => {
    const store = new FileStateStore(root);
    await store.loadAll();
    reset();
    for (let i = 0; i < 10; i++) await store.save(record(`s${i}`));
    // before (Node's fs calls): per save 2 opens (+ chmod, write, fsync, close on each) and 2 renames, 1 mkdir
    expect(fsCalls()).toBe(0);
    expect(calls.jobs).toHaveLength(10);
    expect(calls.jobs[0]).toEqual({ dirs: [[store.dir(ID), 0o710, 1]], files: ['hostconfig.json', 'config.v2.json'] });
    expect(calls.jobs.slice(1).map((j) => j.dirs)).toEqual(Array(9).fill([]));
    expect(calls.jobs.slice(1).map((j) => j.files)).toEqual(Array(9).fill(['config.v2.json']));
    expect(JSON.parse(await readFile(join(store.dir(ID), 'config.v2.json'), 'utf8')).State.Status).toBe('s9');
  });

  it('makeDir (a create with its create.beforeRecordSave failpoint armed) is its own job; the save then makes no directory', async () => {
    const store = new FileStateStore(root);
    await store.loadAll();
    reset();
    await store.makeDir(ID);
    await store.save(record('created'));
    expect(fsCalls()).toBe(0);
    expect(calls.jobs).toEqual([
      { dirs: [[store.dir(ID), 0o710, 1]], files: [] },
      { dirs: [], files: ['hostconfig.json', 'config.v2.json'] },
    ]);
  });

  it('a remove is one removeTrees job and no Node fs call (before: fs.rm, a round trip per entry)', async () => {
    const store = new FileStateStore(root);
    await store.save(record('created'));
    reset();
    await store.remove(ID);
    expect(fsCalls()).toBe(0);
    expect(calls.removes).toEqual([[store.dir(ID)]]);
    expect(existsSync(store.dir(ID))).toBe(false);
  });
});

describe('state store without the addon: Node fs calls, the directory made once', () => {
  beforeEach(() => {
    calls.addon = false;
  });

  it('makes the directory at the first save only (10 saves: 1 mkdir, 10 before)', async () => {
    const store = new FileStateStore(root);
    await store.loadAll();
    reset();
    for (let i = 0; i < 10; i++) await store.save(record(`s${i}`));
    expect(calls.mkdir).toBe(1);
    expect(calls.jobs).toEqual([]);
    expect(JSON.parse(await readFile(join(store.dir(ID), 'config.v2.json'), 'utf8')).State.Status).toBe('s9');
  });

  it('a directory made by makeDir is not made again by the save', async () => {
    const store = new FileStateStore(root);
    await store.loadAll();
    reset();
    await store.makeDir(ID);
    await store.save(record('created'));
    expect(calls.mkdir).toBe(1);
  });

  it('a loaded container is saved without a mkdir', async () => {
    await new FileStateStore(root).save(record('created'));
    const again = new FileStateStore(root);
    expect((await again.loadAll()).records.map((r) => r.ID)).toEqual([ID]);
    reset();
    await again.save(record('running'));
    expect(calls.mkdir).toBe(0);
  });

  it('a remove is fs.rm', async () => {
    const store = new FileStateStore(root);
    await store.save(record('created'));
    reset();
    await store.remove(ID);
    expect([calls.rm, calls.removes.length]).toEqual([1, 0]);
    expect(existsSync(store.dir(ID))).toBe(false);
  });
});

describe.each([
  { path: 'native addon', addon: true },
  { path: 'JS fallback', addon: false },
])('state store ($path)', ({ addon }) => {
  beforeEach(({ skip }) => {
    const why = addon ? addonSkip() : null;
    if (why) skip(why);
    calls.addon = addon;
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
