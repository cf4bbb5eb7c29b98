/**
 * The addon's idmapBind (native/idmap.c) without root: bad arguments are a TypeError or
 * RangeError (no syscall made), and a missing source rejects with the errno and the syscall's
 * name (open_tree) — the tree fd is never opened then. The real idmapped mount (root only) is
 * tested with a user namespace in plugins/userns/test/idmap.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { errnoName, nativeAddon } from '../src/index.js';
import { noAddon } from './build-skip.js';


describe.skipIf(noAddon !== null)(`native idmapBind${noAddon ? ` (skipped: ${noAddon})` : ''}`, () => {
  it('checks its arguments before any syscall', () => {
    const n = nativeAddon()!;
    expect(() => (n.idmapBind as unknown as (...a: unknown[]) => void)('/a', '/b')).toThrow(TypeError);
    expect(() => n.idmapBind(1 as unknown as string, '/b', 3)).toThrow(TypeError);
    expect(() => n.idmapBind('/a', '/b', -1)).toThrow(RangeError);
    expect(() => n.idmapBind('/a', '/b', 1.5)).toThrow(RangeError);
    expect(() => n.idmapBind('/a', '/b', Number.NaN)).toThrow(RangeError);
  });

  it('a missing source fails in open_tree with its errno', () => {
    const err = (() => {
      try {
        nativeAddon()!.idmapBind('/nonexistent/berth-idmap-source', '/tmp', 0);
        return null;
      } catch (e) {
        return e;
      }
    })();
    expect(errnoName(err)).toBe('ENOENT');
    expect((err as { syscall?: string }).syscall).toBe('open_tree');
  });
});
