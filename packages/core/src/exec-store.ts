/**
 * Where exec records live between daemon runs: `<container dir>/execs.json`, every exec of
 * that container (created, running and finished ones not yet pruned), replaced atomically
 * (core's atomic write) whenever one of them changes. Writes per container are chained and
 * coalesced: while one is in flight, later changes make one more write with the newest
 * snapshot, so a burst (health probes) costs at most two writes. No fsync: an exec record
 * describes processes that do not outlive a reboot, and a daemon killed at any instant still
 * finds the whole old or new file (rename). A file that cannot be read is reported and skipped.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicWriteFile } from './atomic-write.js';
import { errorMessage } from './errors.js';
import type { ExecRecord } from './exec.js';
import type { Logger } from './logger.js';

export const EXECS_FILE = 'execs.json';

/** One write of a container's file: it takes the newest snapshot until it begins. */
interface Write {
  data: string;
  begun: boolean;
  done: Promise<void>;
}

function isExecRecord(x: unknown, containerId: string): x is ExecRecord {
  const e = x as Partial<ExecRecord> | null;
  return (
    !!e &&
    typeof e.ID === 'string' &&
    e.ContainerID === containerId &&
    typeof e.Running === 'boolean' &&
    (e.ExitCode === null || typeof e.ExitCode === 'number') &&
    typeof e.ProcessConfig?.entrypoint === 'string' &&
    Array.isArray(e.ProcessConfig.arguments) &&
    !!e.Config &&
    Array.isArray(e.Config.Cmd)
  );
}

export class ExecStore {
  /** Per container, the newest write (in flight, or waiting for the one before it). */
  private readonly writes = new Map<string, Write>();
  /** Containers whose records were dropped (removed): a late write must not recreate their file. */
  private readonly dropped = new Set<string>();

  /** `dirOf`: the container's directory (the state store's), which must exist for a write to land. */
  constructor(
    private readonly dirOf: (containerId: string) => string,
    private readonly logger: Logger,
  ) {}

  /** The exec records stored for a container ([] when there are none or the file cannot be used). */
  async load(containerId: string): Promise<ExecRecord[]> {
    const file = join(this.dirOf(containerId), EXECS_FILE);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.error('cannot read the exec records; skipped', { container: containerId, file, error: errorMessage(err) });
      return [];
    }
    try {
      const list = JSON.parse(text) as unknown;
      if (!Array.isArray(list)) throw new Error('not a list of exec records');
      const good = list.filter((x) => isExecRecord(x, containerId));
      if (good.length !== list.length) this.logger.error('exec records that are not valid were skipped', { container: containerId, file, skipped: String(list.length - good.length) });
      return good;
    } catch (err) {
      this.logger.error('cannot parse the exec records; skipped', { container: containerId, file, error: errorMessage(err) });
      return [];
    }
  }

  /** Replace the container's stored execs with `records` (resolves once that snapshot, or a newer one, is written). */
  save(containerId: string, records: readonly ExecRecord[]): Promise<void> {
    if (this.dropped.has(containerId)) return Promise.resolve();
    const data = JSON.stringify(records);
    const last = this.writes.get(containerId);
    if (last && !last.begun) {
      last.data = data; // not begun yet: it writes this newer snapshot
      return last.done;
    }
    const w: Write = { data, begun: false, done: Promise.resolve() };
    w.done = (last?.done ?? Promise.resolve()).then(async () => {
      w.begun = true;
      await this.write(containerId, w.data);
    });
    this.writes.set(containerId, w);
    void w.done.finally(() => {
      if (this.writes.get(containerId) === w) this.writes.delete(containerId);
    });
    return w.done;
  }

  private async write(containerId: string, data: string): Promise<void> {
    if (this.dropped.has(containerId)) return;
    try {
      await atomicWriteFile(join(this.dirOf(containerId), EXECS_FILE), data, { mode: 0o600, fsync: false });
    } catch (err) {
      // The container's directory is gone (removed meanwhile) or the disk is full: the records
      // in memory stay right; the next change writes them again.
      if (!this.dropped.has(containerId)) this.logger.warn('cannot save the exec records', { container: containerId, error: errorMessage(err) });
    }
  }

  /** The container is removed: no more writes (its directory, and this file, go with it). */
  async drop(containerId: string): Promise<void> {
    this.dropped.add(containerId);
    await this.writes.get(containerId)?.done;
    // Every write of it has landed or was skipped; the exec service saves nothing more for it.
    this.dropped.delete(containerId);
  }

  /** Every write in flight has landed (tests, close). */
  async settle(): Promise<void> {
    while (this.writes.size) await Promise.all([...this.writes.values()].map((w) => w.done));
  }
}
