/**
 * Containers whose stored record could not be read at start-up (issue 10 item 6). They are
 * skipped, not lost: each is named in `/info` Warnings (the file and the full ID), its
 * runtime container is left alone by the orphan sweep, and `docker rm -f <full ID>` removes
 * it for good — the runtime's container (force-deleted in every backend), the mounts and
 * network the release hooks undo, the image store's root filesystem, and the record dir.
 *
 * The release hooks get a stand-in record: the ID, the HostConfig when hostconfig.json still
 * reads, and the image (its ID, else the name it was created from) when the torn
 * config.v2.json still shows it. A container whose image cannot be told at all is released
 * without the image store: its root filesystem stays for the operator.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConflictError, SystemError, errorMessage } from './errors.js';
import type { EventBus } from './events.js';
import type { EngineInfo, Hooks, ReleaseContext } from './hooks.js';
import type { Logger } from './logger.js';
import type { RuntimeBackend } from './runtime.js';
import { CONFIG_FILE, HOSTCONFIG_FILE, type LoadProblem, type StateStore } from './store.js';
import type { ContainerRecord, HostConfig } from './types.js';

export interface UnreadableDeps {
  hooks: Hooks;
  store: StateStore;
  events: EventBus;
  logger: Logger;
  info: EngineInfo;
  /** Every backend the engine knows (the container may be in any). */
  backends: () => RuntimeBackend[];
  /** A record shaped like create's, for the release hooks. */
  newRecord: (fields: Pick<ContainerRecord, 'ID' | 'Name' | 'Created' | 'Config' | 'HostConfig' | 'Image'>) => ContainerRecord;
}

export class UnreadableContainers {
  private readonly problems = new Map<string, LoadProblem>();

  constructor(private readonly d: UnreadableDeps) {}

  /** The load problems of this engine start (replaces any earlier list). */
  set(problems: readonly LoadProblem[]): void {
    this.problems.clear();
    for (const p of problems) this.problems.set(p.id, p);
  }

  has(id: string): boolean {
    return this.problems.has(id);
  }

  list(): LoadProblem[] {
    return [...this.problems.values()];
  }

  /** One line per container, for /info Warnings. */
  warnings(): string[] {
    return this.list().map(
      (p) =>
        `container ${p.id} could not be loaded: ${join(this.d.store.dir(p.id), p.file)}: ${p.error}; ` +
        `it is not managed (it may still be running): remove it with 'docker rm -f ${p.id}'`,
    );
  }

  /**
   * `rm` of an unreadable container, by its full ID. Without `force`, a container some
   * backend still runs is refused (409), as a running container is.
   */
  async remove(id: string, opts: { force?: boolean }): Promise<void> {
    const problem = this.problems.get(id);
    if (!problem) throw new SystemError(`container ${id} is not an unreadable container`);
    const backends = this.d.backends();
    if (!opts.force) {
      for (const b of backends) {
        const st = await b.state(id).catch(() => null);
        if (st && (st.status === 'running' || st.status === 'paused')) {
          throw new ConflictError(
            `cannot remove container "${id}": its record could not be read and it is ${st.status}: stop the container before removing or force remove`,
          );
        }
      }
    }
    for (const b of backends) {
      try {
        await b.delete(id, { force: true });
      } catch (err) {
        throw new SystemError(`unable to remove container ${id}: runtime backend ${b.name}: ${errorMessage(err)}`, { cause: err });
      }
    }
    const rec = await this.standIn(id);
    const ctx: ReleaseContext = { container: rec, reason: 'remove', engine: this.d.info };
    await this.d.hooks.releaseNetwork.promise(ctx).catch((err) => this.d.logger.error('releaseNetwork failed', { container: id, reason: 'remove', error: errorMessage(err) }));
    await this.d.hooks.unmount.promise(ctx).catch((err) => this.d.logger.error('unmount failed', { container: id, reason: 'remove', error: errorMessage(err) }));
    await this.d.store.remove(id);
    this.problems.delete(id);
    this.d.logger.warn('removed a container whose record could not be read', { container: id, file: problem.file, image: rec.Image || '(unknown)' });
    this.d.events.publish('container', 'destroy', id, { name: rec.Name.slice(1), ...(rec.Image ? { image: rec.Image } : {}) });
    // Isolated by the core interceptor: the image store removes the root filesystem here.
    await this.d.hooks.onStateChange.promise({ container: structuredClone(rec), from: 'dead', to: null, reason: 'remove' });
  }

  /** What can still be read of the container's files. */
  private async standIn(id: string): Promise<ContainerRecord> {
    const dir = this.d.store.dir(id);
    let hostConfig: HostConfig = {};
    try {
      const hc = JSON.parse(await readFile(join(dir, HOSTCONFIG_FILE), 'utf8')) as unknown;
      if (hc && typeof hc === 'object' && !Array.isArray(hc)) hostConfig = hc as HostConfig;
    } catch {
      /* unreadable too: defaults */
    }
    const text = await readFile(join(dir, CONFIG_FILE), 'utf8').catch(() => '');
    // The image ID, else the image the container was created from (Config.Image comes first in
    // the file): the image store releases the root filesystem of any container with an image.
    const image = /"Image":"(sha256:[0-9a-f]{64})"/.exec(text)?.[1] ?? /"Image":"([^"\\]+)"/.exec(text)?.[1] ?? '';
    const name = /"Name":"(\/[a-zA-Z0-9][a-zA-Z0-9_.-]*)"/.exec(text)?.[1] ?? `/${id}`;
    return this.d.newRecord({ ID: id, Name: name, Created: '', Config: {}, HostConfig: hostConfig, Image: image });
  }
}
