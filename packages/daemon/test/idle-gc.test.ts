/**
 * The idle collector (idle-gc.ts): when it collects (a minor collection after an idle interval
 * with the heap grown, the full one after the next idle interval), when it leaves the heap
 * alone (busy, or nothing grew), and that V8's collections it uses really give a grown young
 * generation back.
 */
import v8 from 'node:v8';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { IdleCollector, installIdleCollector, type IdleCollectorHandle, type IdleCollectorProbes, processProbes, v8Gc } from '../src/idle-gc.js';

const MiB = 2 ** 20;

/** Probes whose heap size and utilisation the test sets; counts the collections asked for. */
function fakeProbes(): IdleCollectorProbes & { heap: number; busy: number; minor: number; collected: number; afterCollect: number } {
  const p = {
    heap: 30 * MiB,
    busy: 0,
    minor: 0,
    collected: 0,
    afterCollect: 20 * MiB,
    collectMinor() {
      p.minor++;
    },
    collect() {
      p.collected++;
      p.heap = p.afterCollect;
    },
    heapCommitted: () => p.heap,
    busySinceLastCall: () => p.busy,
  };
  return p;
}

/** Grow V8's young generation: many objects that survive a few scavenges. */
function growYoungGeneration(): void {
  const keep: unknown[][] = [];
  for (let round = 0; round < 40; round++) {
    keep.push(Array.from({ length: 20_000 }, (_, i) => ({ i, s: `x${i}` })));
    if (keep.length > 8) keep.shift();
  }
}

const newSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size;

describe('IdleCollector decides', () => {
  it('collects the start-up garbage at the first idle looks (minor, then full), then only after the heap grew by the threshold', () => {
    const p = fakeProbes();
    const c = new IdleCollector(p, { growthBytes: 8 * MiB, fullAfterLooks: 1 });
    expect(c.tick()).toBe(false);
    expect([p.minor, p.collected]).toEqual([1, 0]);
    expect(c.tick()).toBe(true);
    expect([p.minor, p.collected]).toEqual([1, 1]);
    // 20 MiB after the collection: 7 MiB more is not enough, 8 is
    p.heap = 27 * MiB;
    expect(c.tick()).toBe(false);
    expect(c.tick()).toBe(false);
    expect([p.minor, p.collected]).toEqual([1, 1]);
    p.heap = 28 * MiB;
    expect(c.tick()).toBe(false);
    expect(c.tick()).toBe(true);
    expect(c.collections).toBe(2);
    // nothing grew since: idle looks cost nothing
    for (let i = 0; i < 5; i++) expect(c.tick()).toBe(false);
    expect([p.minor, p.collected]).toEqual([2, 2]);
  });

  it('never collects while the event loop is busy: a busy interval between the minor and the full collection starts over', () => {
    const p = fakeProbes();
    const c = new IdleCollector(p, { growthBytes: 8 * MiB, idleBelow: 0.05, fullAfterLooks: 1 });
    p.busy = 0.9;
    expect(c.tick()).toBe(false);
    p.busy = 0.05;
    expect(c.tick()).toBe(false);
    expect([p.minor, p.collected]).toEqual([0, 0]);
    p.busy = 0.01;
    expect(c.tick()).toBe(false);
    p.busy = 0.5;
    expect(c.tick()).toBe(false);
    expect([p.minor, p.collected]).toEqual([1, 0]);
    p.busy = 0.01;
    expect(c.tick()).toBe(false);
    expect(c.tick()).toBe(true);
    expect([p.minor, p.collected]).toEqual([2, 1]);
  });
});

describe('IdleCollector with its default spacing', () => {
  it('runs the full collection three idle looks after the minor one; a busy look in between starts over', () => {
    const p = fakeProbes();
    const c = new IdleCollector(p);
    expect([c.tick(), c.tick(), c.tick()]).toEqual([false, false, false]);
    expect([p.minor, p.collected]).toEqual([1, 0]);
    p.busy = 0.5;
    expect(c.tick()).toBe(false);
    p.busy = 0;
    expect([c.tick(), c.tick(), c.tick()]).toEqual([false, false, false]);
    expect([p.minor, p.collected]).toEqual([2, 0]);
    expect(c.tick()).toBe(true);
    expect([p.minor, p.collected]).toEqual([2, 1]);
  });
});

describe('IdleCollector after a collection that gave nothing back', () => {
  it('tries again at the next idle stretches, twice at most, then waits for the heap to grow', () => {
    const p = fakeProbes();
    p.afterCollect = p.heap; // V8 keeps everything
    const c = new IdleCollector(p, { growthBytes: 8 * MiB, fullAfterLooks: 1 });
    for (let i = 0; i < 12; i++) c.tick();
    expect(p.collected).toBe(3);
    p.heap += 8 * MiB;
    p.afterCollect = 20 * MiB;
    c.tick();
    expect(c.tick()).toBe(true);
    expect(p.collected).toBe(4);
  });
});

describe('the probes of this process', () => {
  it('the full collection is followed by the malloc trim, the minor one is not', () => {
    const calls: string[] = [];
    const p = processProbes(
      (o) => calls.push(o?.type === 'minor' ? 'minor gc' : 'full gc'),
      () => calls.push('trim'),
    );
    p.collectMinor();
    p.collect();
    expect(calls).toEqual(['minor gc', 'full gc', 'trim']);
    expect(p.heapCommitted()).toBeGreaterThan(0);
  });
});

describe('the full collection of this process', () => {
  let handle: IdleCollectorHandle | null = null;
  afterEach(() => handle?.stop());

  it('a minor collection, ≥ 5 s without allocating, then a full one gives a grown young generation back', async () => {
    const gc = v8Gc();
    expect(gc).toBeTypeOf('function');
    growYoungGeneration();
    const grown = newSpace();
    expect(grown).toBeGreaterThan(2 * MiB);
    gc!({ type: 'minor', execution: 'sync' });
    await new Promise((r) => setTimeout(r, 5500));
    gc!();
    expect(newSpace()).toBeLessThan(grown);
  }, 20_000);

  it('installIdleCollector() runs the collections on its timer once the process is idle', async () => {
    handle = installIdleCollector({ intervalMs: 50, growthBytes: 1 });
    expect(handle).not.toBeNull();
    await vi.waitFor(() => expect(handle!.collector.collections).toBeGreaterThanOrEqual(1), { timeout: 10_000, interval: 50 });
  });
});
