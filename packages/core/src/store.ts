/**
 * The state store (token `IStateStore`): one directory per container under
 * `<data-root>/containers/<id>/` with dockerd's file names: config.v2.json (the record
 * without HostConfig) and hostconfig.json. Every write is atomic: temp files fsync'd, then
 * renamed (no directory fsync, as dockerd). hostconfig.json is renamed before
 * config.v2.json, so a crash between the two leaves complete files, never torn ones, and it
 * is written only when it changed since the last save (most saves are state changes).
 */
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { nativeAddon, removeTrees } from '@berth/native';
import { atomicWriteFiles, isAtomicTempFile, makeDirs, type DirSpec } from './atomic-write.js';
import type { ContainerRecord, HostConfig } from './types.js';
import { isFullId } from './ids.js';

export interface LoadProblem {
  id: string;
  file: string;
  error: string;
}

export interface LoadResult {
  records: ContainerRecord[];
  /** Containers that could not be loaded (reported and skipped). */
  problems: LoadProblem[];
  /**
   * Dirs of creates a crash interrupted before the first config.v2.json landed (nothing in
   * them but, at most, hostconfig.json). Listed, not removed: the engine removes them at
   * start-up (another caller of loadAll may run while a create is in that window).
   */
  interrupted?: string[];
}

export interface StateStore {
  /** Directory of a container's files (log, checkpoints, resolv.conf live there too). */
  dir(id: string): string;
  /**
   * Makes the container's directory. A create leaves it to the first save (one job with the
   * files where the native addon is loaded); only a create with its `create.beforeRecordSave`
   * failpoint armed makes it first.
   */
  makeDir(id: string): Promise<void>;
  save(record: ContainerRecord): Promise<void>;
  remove(id: string): Promise<void>;
  loadAll(): Promise<LoadResult>;
}

export const CONFIG_FILE = 'config.v2.json';
export const HOSTCONFIG_FILE = 'hostconfig.json';

/** Pauses between the attempts of `saveRetrying` (ms): a full disk may free up, an EIO may pass. */
export const SAVE_RETRY_DELAYS_MS: readonly number[] = [20, 100, 400];

/**
 * Save a record, trying again after each of `delaysMs` when the write fails (ENOSPC, EIO…).
 * Throws the last error when every attempt failed; `onRetry` hears each failure before a retry.
 */
export async function saveRetrying(
  store: StateStore,
  record: ContainerRecord,
  opts: { delaysMs?: readonly number[]; onRetry?: (err: unknown, attempt: number) => void } = {},
): Promise<void> {
  const delays = opts.delaysMs ?? SAVE_RETRY_DELAYS_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      await store.save(record);
      return;
    } catch (err) {
      if (attempt >= delays.length) throw err;
      opts.onRetry?.(err, attempt + 1);
      await new Promise((r) => setTimeout(r, delays[attempt]));
    }
  }
}

/** A container's directory as made: mode 0710, an existing one is fine, a missing parent made too. */
const recordDir = (dir: string): DirSpec => ({ path: dir, mode: 0o710, existOk: true });

export class FileStateStore implements StateStore {
  private readonly root: string;
  /** Writes per container are chained so a later snapshot never lands before an earlier one. */
  private readonly chains = new Map<string, Promise<void>>();
  /** Removed containers: a late save must not bring their directory back. */
  private readonly removed = new Set<string>();
  /** The hostconfig.json each container's directory holds, as this store wrote it. */
  private readonly writtenHost = new Map<string, string>();
  /**
   * Containers whose directory this store saw exist (made, loaded or saved into): a save does not
   * make it again — a `mkdir -p` of an existing directory is two file-system round trips on
   * the daemon's one JS thread, at every state change (issue 18). The first save makes it with
   * its files (one thread-pool job with the addon).
   */
  private readonly dirMade = new Set<string>();

  constructor(dataRoot: string) {
    this.root = join(dataRoot, 'containers');
  }

  dir(id: string): string {
    return join(this.root, id);
  }

  async makeDir(id: string): Promise<void> {
    await makeDirs([recordDir(this.dir(id))]);
    this.dirMade.add(id);
  }

  save(record: ContainerRecord): Promise<void> {
    const { HostConfig: hostConfig, ...rest } = record;
    // Snapshot now: the record keeps changing while the write is queued.
    const config = JSON.stringify(rest);
    const host = JSON.stringify(hostConfig ?? {});
    const id = record.ID;
    const prev = this.chains.get(id) ?? Promise.resolve();
    const next = prev
      .catch(() => {})
      .then(async () => {
        if (this.removed.has(id)) return;
        const dir = this.dir(id);
        // hostconfig.json only when it changed since this store last wrote it (most saves
        // are state changes); it goes first, so config.v2.json is never the older one.
        const files: [string, string][] = [];
        if (this.writtenHost.get(id) !== host) files.push([HOSTCONFIG_FILE, host]);
        files.push([CONFIG_FILE, config]);
        this.writtenHost.delete(id);
        // No directory fsync (as dockerd's atomic writer): a crash keeps whole files, old or
        // new, and the engine reconciles the state with the runtime when it starts again.
        try {
          await atomicWriteFiles(dir, files, { mode: 0o600, dirs: this.dirMade.has(id) ? [] : [recordDir(dir)] });
        } catch (err) {
          // the directory went behind this store's back: made again, as every save did before
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !this.dirMade.delete(id)) throw err;
          await atomicWriteFiles(dir, files, { mode: 0o600, dirs: [recordDir(dir)] });
        }
        if (!this.removed.has(id)) {
          this.writtenHost.set(id, host);
          this.dirMade.add(id);
        }
      });
    this.chains.set(id, next);
    void next.finally(() => {
      if (this.chains.get(id) === next) this.chains.delete(id);
    }).catch(() => {});
    return next;
  }

  async remove(id: string): Promise<void> {
    this.removed.add(id);
    await (this.chains.get(id) ?? Promise.resolve()).catch(() => {});
    this.writtenHost.delete(id);
    this.dirMade.delete(id);
    // one thread-pool job where the native addon is loaded (never into a mount point), else fs.rm
    await removeTrees(nativeAddon(), [this.dir(id)]);
  }

  async loadAll(): Promise<LoadResult> {
    await mkdir(this.root, { recursive: true, mode: 0o710 });
    const records: ContainerRecord[] = [];
    const problems: LoadProblem[] = [];
    const interrupted: string[] = [];
    for (const ent of await readdir(this.root, { withFileTypes: true })) {
      if (!ent.isDirectory() || !isFullId(ent.name)) continue;
      const id = ent.name;
      const dir = this.dir(id);
      // Leftovers of writes interrupted by a crash: the real files are intact, drop the temps.
      const files: string[] = [];
      for (const f of await readdir(dir).catch(() => [] as string[])) {
        if (isAtomicTempFile(f)) await unlink(join(dir, f)).catch(() => {});
        else files.push(f);
      }
      // A create that never saved its record (the first save writes hostconfig.json first).
      if (files.every((f) => f === HOSTCONFIG_FILE)) {
        interrupted.push(id);
        continue;
      }
      let file = CONFIG_FILE;
      try {
        const rec = JSON.parse(await readFile(join(dir, CONFIG_FILE), 'utf8')) as ContainerRecord;
        if (!rec || typeof rec !== 'object' || rec.ID !== id || !rec.State || typeof rec.Name !== 'string') {
          throw new Error('not a container record for this directory');
        }
        file = HOSTCONFIG_FILE;
        let hostConfig: HostConfig = {};
        try {
          hostConfig = JSON.parse(await readFile(join(dir, HOSTCONFIG_FILE), 'utf8')) as HostConfig;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          // dockerd tolerates a missing hostconfig.json too: defaults.
        }
        if (!hostConfig || typeof hostConfig !== 'object' || Array.isArray(hostConfig)) throw new Error('hostconfig is not an object');
        rec.HostConfig = hostConfig;
        records.push(rec);
        this.dirMade.add(id);
      } catch (err) {
        problems.push({ id, file, error: err instanceof Error ? err.message : String(err) });
      }
    }
    return { records, problems, interrupted };
  }
}
