/**
 * Container prune (prune.ts) as moby's ContainersPrune: only containers that neither run nor
 * are being removed; the `until`, `label` and `label!` filters; SpaceReclaimed adds the writable
 * layers measured before each removal, and a container whose removal fails (raced with a start)
 * is neither reported nor counted.
 */
import { describe, expect, it } from 'vitest';
import { ConflictError, pruneContainers, type ContainerRecord, type ImageStore } from '../src/index.js';

/** The fields prune reads of a record. */
function makeContainer(o: { ID: string; Image?: string; Created?: string; Config?: { Labels?: Record<string, string> }; State: { Status: string; Running?: boolean } }): ContainerRecord {
  return { Created: '2026-01-01T00:00:00Z', Image: '', ...o, Config: { Labels: {}, ...o.Config }, State: { Running: false, ...o.State } } as unknown as ContainerRecord;
}

function world(records: ContainerRecord[], opts: { failRemove?: string } = {}) {
  const removed: string[] = [];
  const containers = {
    list: () => records.filter((r) => !removed.includes(r.ID)),
    remove: async (id: string) => {
      if (id === opts.failRemove) throw new ConflictError('container is running');
      removed.push(id);
    },
  };
  const sizes: Record<string, number> = {};
  const images: ImageStore = {
    resolve: async () => null,
    rootfsSizes: async (id) => ({ SizeRw: sizes[id] ?? 0, SizeRootFs: 1 << 20 }),
  };
  return { containers, images, removed, sizes };
}

const filters = (f: Record<string, string[]>) => new Map(Object.entries(f).map(([k, v]) => [k, new Set(v)]));

describe('pruneContainers', () => {
  it('removes the stopped containers, keeps running and removing ones; SpaceReclaimed is their writable layers', async () => {
    const stopped = makeContainer({ ID: 'a'.repeat(64), Image: 'sha256:i', State: { Status: 'exited' } });
    const created = makeContainer({ ID: 'b'.repeat(64), Image: 'sha256:i', State: { Status: 'created' } });
    const running = makeContainer({ ID: 'c'.repeat(64), Image: 'sha256:i', State: { Status: 'running', Running: true } });
    const removing = makeContainer({ ID: 'd'.repeat(64), Image: 'sha256:i', State: { Status: 'removing' } });
    const w = world([stopped, created, running, removing]);
    Object.assign(w.sizes, { [stopped.ID]: 100, [created.ID]: 20, [running.ID]: 5000, [removing.ID]: 7000 });
    const r = await pruneContainers(w.containers, w.images, filters({}));
    expect(r).toEqual({ ContainersDeleted: [stopped.ID, created.ID], SpaceReclaimed: 120 });
    expect(w.removed).toEqual([stopped.ID, created.ID]);
  });

  it('label, label! and until select; a container without an image counts 0 bytes; a failed removal is left out', async () => {
    const keep = makeContainer({ ID: '1'.repeat(64), Created: '2026-01-01T00:00:00Z', Config: { Labels: { keep: 'yes' } }, State: { Status: 'exited' } });
    const old = makeContainer({ ID: '2'.repeat(64), Created: '2026-01-01T00:00:00Z', Image: 'sha256:i', Config: { Labels: { team: 'a' } }, State: { Status: 'exited' } });
    const plain = makeContainer({ ID: '3'.repeat(64), Created: '2026-01-01T00:00:00Z', Config: { Labels: { team: 'a' } }, State: { Status: 'exited' } });
    const young = makeContainer({ ID: '4'.repeat(64), Created: '2026-06-01T00:00:00Z', Image: 'sha256:i', Config: { Labels: { team: 'a' } }, State: { Status: 'exited' } });
    const racing = makeContainer({ ID: '5'.repeat(64), Created: '2026-01-01T00:00:00Z', Image: 'sha256:i', Config: { Labels: { team: 'a' } }, State: { Status: 'exited' } });
    const w = world([keep, old, plain, young, racing], { failRemove: racing.ID });
    Object.assign(w.sizes, { [old.ID]: 300, [plain.ID]: 999, [young.ID]: 400, [racing.ID]: 50 });
    const r = await pruneContainers(w.containers, w.images, filters({ label: ['team=a'], 'label!': ['keep'], until: ['2026-03-01T00:00:00Z'] }));
    expect(r).toEqual({ ContainersDeleted: [old.ID, plain.ID], SpaceReclaimed: 300 });
  });

  it('without an image store that measures, SpaceReclaimed is 0; a bad until is a 400', async () => {
    const w = world([makeContainer({ ID: 'e'.repeat(64), Image: 'sha256:i', State: { Status: 'exited' } })]);
    expect(await pruneContainers(w.containers, { resolve: async () => null }, filters({}))).toEqual({ ContainersDeleted: ['e'.repeat(64)], SpaceReclaimed: 0 });
    await expect(pruneContainers(w.containers, undefined, filters({ until: ['soon'] }))).rejects.toMatchObject({ kind: 'InvalidParameter' });
  });
});
