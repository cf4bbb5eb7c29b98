/**
 * NameIndex.listNewestFirst: a filtered list copies only the records the filter keeps (the work
 * of `docker ps --filter label=…` with thousands of containers present must not copy them all),
 * and the order is newest first by time.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NameIndex } from '../src/name-index.js';
import type { ContainerRecord } from '../src/types.js';

function rec(i: number): ContainerRecord {
  // Created: one record per millisecond; RFC3339Nano trims trailing zeros (text order ≠ time order)
  const ms = String(i % 1000).padStart(3, '0').replace(/0+$/, '');
  const created = `2026-12-06T08:${String(Math.floor(i / 60000) % 60).padStart(2, '0')}:${String(Math.floor(i / 1000) % 60).padStart(2, '0')}${ms ? `.${ms}` : ''}Z`;
  return { ID: `${i}`.padStart(64, 'a'), Name: `/c${i}`, Created: created, Config: { Labels: i % 100 === 0 ? { rare: '1' } : {} } } as unknown as ContainerRecord;
}

describe('NameIndex.listNewestFirst', () => {
  afterEach(() => vi.restoreAllMocks());

  it('copies only the records the filter keeps', () => {
    const index = new NameIndex();
    for (let i = 0; i < 1000; i++) index.add(rec(i));
    const clone = vi.spyOn(globalThis, 'structuredClone');
    const kept = index.listNewestFirst((r) => r.Config.Labels?.rare === '1');
    expect(kept.map((r) => r.Name)).toEqual(Array.from({ length: 10 }, (_, k) => `/c${(9 - k) * 100}`));
    expect(clone).toHaveBeenCalledTimes(10);
    // copies: changing one does not change the index
    kept[0]!.Name = '/changed';
    expect(index.byId(rec(900).ID)?.Name).toBe('/c900');
  });

  it('without a filter lists every record newest first', () => {
    const index = new NameIndex();
    for (const i of [5, 1200, 10, 999, 1000]) index.add(rec(i));
    expect(index.listNewestFirst().map((r) => r.Name)).toEqual(['/c1200', '/c1000', '/c999', '/c10', '/c5']);
  });

  it('with a view: makes its answer from the live records (no copy), equal times by ID descending', () => {
    const index = new NameIndex();
    for (const i of [7, 3, 1500]) index.add({ ...rec(i), Created: '2026-12-06T08:00:00.5Z' });
    index.add(rec(2000));
    const clone = vi.spyOn(globalThis, 'structuredClone');
    const seen: unknown[] = [];
    const names = index.listNewestFirst(undefined, (r) => {
      seen.push(r);
      return r.Name;
    });
    expect(names).toEqual(['/c2000', '/c7', '/c3', '/c1500']);
    expect(clone).not.toHaveBeenCalled();
    expect(seen[0]).toBe(index.byId(rec(2000).ID));
  });
});
