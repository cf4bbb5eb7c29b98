/**
 * mount(2)/umount2(2) through the small N-API addon built from native/mount.c (see
 * native/build.mjs), so that mounting a container's root filesystem starts no process.
 * `nativeMount()` is null when the addon was not built or cannot load (then the image store
 * runs the mount/umount binaries), or when BERTH_NATIVE_MOUNT=0.
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';

export interface NativeMount {
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): Promise<void>;
  umount2(target: string, flags: number): Promise<void>;
}

/** umount2 flag: detach now, clean up when no longer busy (umount -l). */
export const MNT_DETACH = 2;

let loaded: NativeMount | null | undefined;

export function nativeMount(): NativeMount | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env.BERTH_NATIVE_MOUNT === '0' || process.platform !== 'linux') return loaded;
  try {
    // The same path from src/ and dist/: <package>/dist/native/berth_mount.node.
    loaded = createRequire(import.meta.url)(new URL('../dist/native/berth_mount.node', import.meta.url).pathname) as NativeMount;
  } catch {
    loaded = null;
  }
  return loaded;
}

/** The errno name of an addon error (EBUSY …), from its numeric `errno`. */
export function errnoName(err: unknown): string | undefined {
  const n = (err as { errno?: unknown }).errno;
  if (typeof n !== 'number') return undefined;
  return Object.entries(constants.errno).find(([, v]) => v === n)?.[0];
}
