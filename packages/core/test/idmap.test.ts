/** The ID translation of core's idmap.ts: ranges, several ranges, IDs outside them, identity. */
import { describe, expect, it } from 'vitest';
import { errorKind, mapToContainer, ownerToContainer, ownerToHost, toContainer, toHost, type IdMappings } from '../src/index.js';

const ranges = [
  { containerID: 0, hostID: 100000, size: 1000 },
  { containerID: 1000, hostID: 300000, size: 64536 },
];
const maps: IdMappings = { uid: ranges, gid: [{ containerID: 0, hostID: 200000, size: 65536 }] };

describe('idmap', () => {
  it('maps container IDs to host IDs across ranges, and back', () => {
    expect(toHost(0, ranges)).toBe(100000);
    expect(toHost(999, ranges)).toBe(100999);
    expect(toHost(1000, ranges)).toBe(300000);
    expect(toHost(65535, ranges)).toBe(364535);
    for (const id of [0, 1, 999, 1000, 4242, 65535]) expect(toContainer(toHost(id, ranges), ranges)).toBe(id);
  });

  it('refuses an ID no range covers, as dockerd (typed, not by message)', () => {
    expect(() => toHost(65536, ranges)).toThrow();
    let err: unknown;
    try {
      toContainer(0, ranges);
    } catch (e) {
      err = e;
    }
    expect(errorKind(err)).toBe('System');
    expect(mapToContainer(99999, ranges)).toBeUndefined();
    expect(mapToContainer(101000, ranges)).toBeUndefined();
  });

  it('is the identity without mappings', () => {
    expect(toHost(5, [])).toBe(5);
    expect(toContainer(5, [])).toBe(5);
    expect(ownerToHost(undefined)).toBeUndefined();
    expect(ownerToHost({ uid: [], gid: [] })).toBeUndefined();
    expect(ownerToContainer(undefined, 'error')).toBeUndefined();
  });

  it('translates owner pairs, uid and gid through their own maps', () => {
    expect(ownerToHost(maps)!(1000, 7)).toEqual({ uid: 300000, gid: 200007 });
    expect(ownerToContainer(maps, 'error')!(100001, 200002)).toEqual({ uid: 1, gid: 2 });
    expect(() => ownerToContainer(maps, 'error')!(0, 0)).toThrow();
    expect(ownerToContainer(maps, 'keep')!(0, 200003)).toEqual({ uid: 0, gid: 3 });
  });
});
