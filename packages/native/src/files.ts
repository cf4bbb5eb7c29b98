/**
 * The addon's `writeFiles` (native/files.c) as callers use it: directories and atomic file
 * writes as one thread-pool job (issue 18: a container create's file work was ~20 round trips
 * through the daemon's one JS thread). Its failure is shaped as Node's own fs errors are —
 * `code` ('EEXIST'…), negative `errno`, `syscall`, `path`, "CODE: text, syscall 'path'" — so a
 * caller handles the addon's and Node's fs errors alike (core's atomic-write.ts, the one user).
 */
import { getSystemErrorMap } from 'node:util';
import type { NativeAddon } from './index.js';

/** A directory flag of writeFiles: an existing directory is fine (else EEXIST fails the job). */
export const DIR_EXIST_OK = 1;
/** writeFiles flag: no fsync of the temp files (files that do not outlive a reboot). */
export const WRITE_NO_FSYNC = 1;
/** writeFiles flag: fsync the directory after the renames. */
export const WRITE_SYNC_DIR = 2;

/** A directory to make: its path, its mode (umask applies, as mkdir(2)'s), DIR_EXIST_OK or 0. */
export type WriteFilesDir = [path: string, mode: number, flags: number];
/** A file to replace in the job's directory: its name (no '/') and content (a string is written as UTF-8). */
export type WriteFilesFile = [name: string, data: string | Uint8Array];

/** The addon's error ({errno > 0, syscall, path}) as Node's fs would have thrown it (also remove.ts's). */
export function asFsError(err: unknown): unknown {
  const e = err as { errno?: unknown; syscall?: unknown; path?: unknown };
  if (typeof e?.errno !== 'number' || typeof e.syscall !== 'string') return err;
  const [code, text] = getSystemErrorMap().get(-e.errno) ?? [`E${e.errno}`, 'unknown error'];
  const path = typeof e.path === 'string' ? e.path : '';
  const out = new Error(`${code}: ${text}, ${e.syscall} '${path}'`) as NodeJS.ErrnoException;
  Object.assign(out, { errno: -e.errno, code, syscall: e.syscall, path });
  return out;
}

/**
 * One job: `dirs` made in order (a missing parent made too), then each of `files` replaced in
 * `dir` atomically (temp file, mode, fsync unless WRITE_NO_FSYNC, all temps before the first
 * rename, renames in order; WRITE_SYNC_DIR fsyncs `dir` after). Stops at the first failure,
 * leaving no temp file; the directories it made stay.
 */
export async function writeFiles(addon: NativeAddon, dirs: WriteFilesDir[], dir: string, files: WriteFilesFile[], mode: number, flags: number): Promise<void> {
  try {
    await addon.writeFiles(dirs, dir, files, mode, flags);
  } catch (err) {
    throw asFsError(err);
  }
}
