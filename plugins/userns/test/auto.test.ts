/**
 * UsernsMode=auto's allocator (no root): 200 containers get 200 distinct, non-overlapping
 * 65536-ID slices of the remap user's ranges (also across two subordinate ranges), the table
 * survives a restart (a new allocator on the same file), freed slices are handed out again,
 * and a full table refuses with Conflict.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errorKind, type OciIdMapping } from '@berth/core';
import { AUTO_SIZE, AutoAllocator, sliceMappings, type IdMaps } from '../src/index.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'userns-auto-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Host id intervals [lo, hi) of a mapping list. */
const hostSpans = (m: readonly OciIdMapping[]): Array<[number, number]> => m.map((x) => [x.hostID, x.hostID + x.size]);

describe('UsernsMode=auto allocation', () => {
  it('200 containers: distinct non-overlapping slices of 65536 ids, persisted, freed and reused', async () => {
    // two subordinate ranges: 150 slices in the first, 60 in the second (not adjacent on the host)
    const maps: IdMaps = {
      uidMappings: [
        { containerID: 0, hostID: 1_000_000, size: 150 * AUTO_SIZE },
        { containerID: 150 * AUTO_SIZE, hostID: 100_000_000, size: 60 * AUTO_SIZE },
      ],
      gidMappings: [{ containerID: 0, hostID: 2_000_000, size: 210 * AUTO_SIZE }],
    };
    const file = join(dir, 'userns', 'auto.json');
    const a = new AutoAllocator(file, maps);
    expect(a.capacity).toBe(210);
    const got = new Map<string, IdMaps>();
    for (let i = 0; i < 200; i++) got.set(`c${i}`, await a.allocate(`c${i}`));

    const spans = [...got.values()].flatMap((m) => hostSpans(m.uidMappings)).sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
    for (const m of got.values()) {
      expect(m.uidMappings.reduce((n, x) => n + x.size, 0)).toBe(AUTO_SIZE);
      expect(m.uidMappings[0]!.containerID).toBe(0);
      expect(m.gidMappings).toEqual([{ containerID: 0, hostID: m.gidMappings[0]!.hostID, size: AUTO_SIZE }]);
    }
    // the 151st slice lives in the second range
    expect(got.get('c150')!.uidMappings).toEqual([{ containerID: 0, hostID: 100_000_000, size: AUTO_SIZE }]);
    // asking again gives the same slice
    expect(await a.allocate('c7')).toEqual(got.get('c7'));

    // a daemon restart reads the table back
    const b = new AutoAllocator(file, maps);
    expect(b.get('c42')).toEqual(got.get('c42'));
    expect(Object.keys(JSON.parse(await readFile(file, 'utf8')) as object)).toHaveLength(200);

    // free every even one; new containers get exactly the freed slices, never a used one
    for (let i = 0; i < 200; i += 2) await b.free(`c${i}`);
    expect(b.allocations().size).toBe(100);
    const used = new Set([...b.allocations().values()]);
    for (let i = 0; i < 100; i++) {
      await b.allocate(`n${i}`);
      const slot = b.allocations().get(`n${i}`)!;
      expect(used.has(slot)).toBe(false);
      used.add(slot);
    }
    expect(b.allocations().size).toBe(200);
    await b.free('never-allocated');
    expect(new AutoAllocator(file, maps).allocations().size).toBe(200);
  });

  it('a full table refuses with Conflict and allocates nothing', async () => {
    const maps: IdMaps = { uidMappings: [{ containerID: 0, hostID: 100000, size: 2 * AUTO_SIZE + 5 }], gidMappings: [{ containerID: 0, hostID: 100000, size: 3 * AUTO_SIZE }] };
    const a = new AutoAllocator(join(dir, 'auto.json'), maps);
    await a.allocate('a');
    await a.allocate('b');
    const err = await a.allocate('c').catch((e: unknown) => e);
    expect(errorKind(err)).toBe('Conflict');
    expect(a.allocations().has('c')).toBe(false);
  });

  it('a slice across two mapping entries is renumbered from 0', () => {
    const m = [
      { containerID: 0, hostID: 500, size: 10 },
      { containerID: 10, hostID: 9000, size: 10 },
    ];
    expect(sliceMappings(m, 5, 10)).toEqual([
      { containerID: 0, hostID: 505, size: 5 },
      { containerID: 5, hostID: 9000, size: 5 },
    ]);
  });
});
