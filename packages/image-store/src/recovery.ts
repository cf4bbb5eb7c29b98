/**
 * Start-up checks of the image store's own files (issue 10 item 6): a file berth cannot read
 * never stops the daemon. Each bad entry is skipped or repaired, named in a warning (logged
 * by the plugin and listed in /info's Warnings) and, where it holds anything, kept beside
 * the store as `<file>.corrupt-<time>` for the operator.
 *
 * - `imagedb/<id>.json` unreadable, config blob good: rebuilt from the config (the image
 *   stays; its parent link and last tag time are lost). Config blob missing or not matching
 *   its digest: the image is skipped (dockerd's image store skips an image it cannot read
 *   the same way) and its bad blob removed, so loading or pulling it again repairs it.
 * - `repositories.json` unreadable: the previous generation (`repositories.json.bak`, kept
 *   by every save) is used when it reads; otherwise the store starts with no references
 *   (the images stay, untagged). dockerd refuses to start here; berth keeps serving.
 *   Entries with a bad reference or image ID are dropped one by one.
 * - `layers/<chain>/meta.json` unreadable: the layer dir is moved aside to
 *   `layers/corrupt-<chain>-<time>` (never deleted: a running container may still have it
 *   as a lower dir); images on it need loading or pulling again.
 * - Temp files of writes a crash interrupted (`.tmp-*`) are removed.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { BlobStore } from './blobs.js';
import { isDigest, type Digest } from './digest.js';
import { ATOMIC_TMP_PREFIX, atomicWriteFile, isAtomicTempFile } from '@berth/core';
import { STORE_WRITE, randomId } from './fsutil.js';
import { parseReference, referenceString, repositoryName } from './reference.js';

export type Warn = (message: string) => void;

export interface RepositoriesFile {
  Repositories: Record<string, Record<string, Digest>>;
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

/** Moves an unreadable file or dir aside (kept for the operator); returns the new name. */
async function keepAside(p: string, name = `${p}.corrupt-${stamp()}`): Promise<string> {
  await fsp.rename(p, name);
  return name;
}

/** Removes temp files of atomic writes a crash interrupted (`.tmp-*`) in `dir`. */
export async function sweepTempFiles(dir: string): Promise<void> {
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    if (isAtomicTempFile(name)) await fsp.rm(path.join(dir, name), { force: true });
  }
}

/** Reads a JSON file: null when absent, `{ error }` when unreadable. */
async function readJsonChecked(file: string): Promise<{ value: unknown } | { error: unknown } | null> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    return { error: err };
  }
  try {
    return { value: JSON.parse(text) as unknown };
  } catch (err) {
    return { error: err };
  }
}

/** The valid part of a parsed repositories file; `dropped` names the entries left out. */
function validRepositories(raw: unknown): { repos: RepositoriesFile; dropped: string[] } | null {
  const top = raw as { Repositories?: unknown } | null;
  if (!top || typeof top !== 'object' || !top.Repositories || typeof top.Repositories !== 'object' || Array.isArray(top.Repositories)) return null;
  const repos: RepositoriesFile = { Repositories: {} };
  const dropped: string[] = [];
  for (const [, refs] of Object.entries(top.Repositories as Record<string, unknown>)) {
    if (!refs || typeof refs !== 'object') continue;
    for (const [key, id] of Object.entries(refs as Record<string, unknown>)) {
      let canonical: string | null = null;
      try {
        const ref = parseReference(key);
        if (referenceString(ref) === key && isDigest(id)) canonical = repositoryName(ref);
      } catch {
        canonical = null;
      }
      if (canonical === null) {
        dropped.push(`${key} → ${JSON.stringify(id)}`);
        continue;
      }
      (repos.Repositories[canonical] ??= {})[key] = id as Digest;
    }
  }
  return { repos, dropped };
}

/**
 * Reads `repositories.json` (see the file header). `changed` says the caller must save the
 * result (entries were dropped or the references came from elsewhere).
 */
export async function loadRepositories(file: string, warn: Warn): Promise<{ repos: RepositoriesFile; changed: boolean }> {
  const name = path.basename(file);
  const read = await readJsonChecked(file);
  if (read === null) return { repos: { Repositories: {} }, changed: false };
  if ('value' in read) {
    const ok = validRepositories(read.value);
    if (ok) {
      for (const d of ok.dropped) warn(`image store: ${file}: dropped an unreadable reference (${d})`);
      return { repos: ok.repos, changed: ok.dropped.length > 0 };
    }
  }
  const why = 'error' in read ? reason(read.error) : 'not a {"Repositories": {…}} object';
  const kept = await keepAside(file);
  const bak = await readJsonChecked(`${file}.bak`);
  const fromBak = bak && 'value' in bak ? validRepositories(bak.value) : null;
  if (fromBak) {
    warn(`image store: ${file} is unreadable (${why}); references restored from ${name}.bak (the generation before the last change); the unreadable file was kept as ${kept}`);
    return { repos: fromBak.repos, changed: true };
  }
  warn(`image store: ${file} is unreadable (${why}) and has no readable previous generation; starting with no image references (images stay, untagged: tag them again); the unreadable file was kept as ${kept}`);
  return { repos: { Repositories: {} }, changed: true };
}

/** Keeps the current `repositories.json` as `.bak` (a hard link) before it is replaced. */
export async function keepPreviousGeneration(file: string): Promise<void> {
  const tmp = path.join(path.dirname(file), `${ATOMIC_TMP_PREFIX}${path.basename(file)}.bak-${randomId(6)}`);
  try {
    await fsp.link(file, tmp);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    await fsp.rename(tmp, `${file}.bak`);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

/** Whether the image config blob reads and matches its digest (the image ID). */
async function configReadable(blobs: BlobStore, id: Digest): Promise<string | null> {
  try {
    const cfg = JSON.parse((await blobs.read(id)).toString('utf8')) as { rootfs?: { diff_ids?: unknown } };
    if (!cfg || typeof cfg !== 'object' || !Array.isArray(cfg.rootfs?.diff_ids)) return 'its config has no rootfs.diff_ids';
    return null;
  } catch (err) {
    return reason(err);
  }
}

/** Checks every `imagedb/<id>.json` (see the file header). */
export async function checkImageDb(dbDir: string, blobs: BlobStore, warn: Warn): Promise<void> {
  await sweepTempFiles(dbDir);
  for (const name of await fsp.readdir(dbDir)) {
    const m = /^([0-9a-f]{64})\.json$/.exec(name);
    if (!m) continue;
    const file = path.join(dbDir, name);
    const id = `sha256:${m[1]}` as Digest;
    const read = await readJsonChecked(file);
    if (read === null) continue;
    const meta = 'value' in read ? (read.value as { id?: unknown } | null) : null;
    const metaBad = !meta || typeof meta !== 'object' || meta.id !== id ? ('error' in read ? reason(read.error) : 'not an image record of this ID') : null;
    const configBad = await configReadable(blobs, id);
    if (configBad !== null) {
      const kept = await keepAside(file);
      await blobs.delete(id);
      warn(`image store: skipped image ${id}: its config blob ${blobs.path(id)} is unreadable (${configBad}); load or pull the image again (its record was kept as ${kept})`);
      continue;
    }
    if (metaBad !== null) {
      const kept = await keepAside(file);
      const st = await fsp.stat(kept).catch(() => null);
      await atomicWriteFile(file, JSON.stringify({ id, added: (st?.mtime ?? new Date()).toISOString() }), STORE_WRITE);
      warn(`image store: ${file} was unreadable (${metaBad}); rebuilt from the image config (its parent image and last tag time are lost; the unreadable file was kept as ${kept})`);
    }
  }
}

/** Moves a layer dir whose meta.json is unreadable aside, and says so. */
export async function quarantineLayer(dir: string, err: unknown, warn: Warn): Promise<void> {
  const kept = await keepAside(dir, path.join(path.dirname(dir), `corrupt-${path.basename(dir)}-${stamp()}`));
  warn(`image store: layer ${path.basename(dir)} skipped: ${path.join(dir, 'meta.json')} is unreadable (${reason(err)}); moved aside to ${kept} (remove it once no container uses it); images on it must be loaded or pulled again`);
}
