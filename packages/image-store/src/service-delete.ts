/**
 * ImageService's delete half: DELETE /images/{name} with dockerd's untag rules and conflicts
 * (daemon/images/image_delete.go) and POST /images/prune. Package-internal: ImageService's
 * `remove` and `prune` are the one entry (src/service.ts).
 */
import {
  ConflictError,
  NotFoundError,
  checkFilterNames,
  filterValues,
  matchLabels,
  matchNoLabel,
  parseDockerTimeMs,
  shortId,
  type DockerFilters,
} from '@berth/core';
import { hexOf, type Digest } from './digest.js';
import type { LocalImageStore } from './images.js';
import { familiarString, parseReference, type Reference } from './reference.js';
import type { RootfsManager } from './rootfs.js';
import { boolFilter, createdSeconds } from './service-filters.js';

/** A container as the image service needs to know it (for conflicts and prune). */
export interface ContainerImageUsage {
  id: string;
  /** Image ID (sha256:…) the container was created from. */
  image: string;
  running: boolean;
}

export type ContainerLister = () => Promise<ContainerImageUsage[]> | ContainerImageUsage[];

export interface DeleteItem {
  Untagged?: string;
  Deleted?: string;
}

export class ImageDeleter {
  constructor(
    private readonly store: LocalImageStore,
    private readonly rootfs: RootfsManager,
    private readonly containers: ContainerLister,
  ) {}

  private async usage(id: Digest): Promise<{ running?: ContainerImageUsage; stopped?: ContainerImageUsage }> {
    const cs = (await this.containers()).filter((c) => c.image === id);
    return { running: cs.find((c) => c.running), stopped: cs.find((c) => !c.running) };
  }

  private isSingleReference(refs: Reference[]): boolean {
    if (refs.length <= 1) return refs.length === 1;
    let single: Reference | null = null;
    const canonical = new Set<string>();
    for (const r of refs) {
      if (r.digest) canonical.add(`${r.domain}/${r.path}`);
      else if (!single) single = r;
      else return false;
    }
    single ??= refs[0];
    return canonical.size === 1 && canonical.has(`${single.domain}/${single.path}`);
  }

  private conflict(id: Digest, hard: boolean, message: string): ConflictError {
    return new ConflictError(`conflict: unable to delete ${shortId(id)} (${hard ? 'cannot be forced' : 'must be forced'}) - ${message}`);
  }

  private async checkConflict(id: Digest, mask: { children: boolean; running: boolean; refs: boolean; stopped: boolean }): Promise<ConflictError | null> {
    if (mask.children && (await this.store.children(id)).length > 0) return this.conflict(id, true, 'image has dependent child images');
    const u = await this.usage(id);
    if (mask.running && u.running) return this.conflict(id, true, `image is being used by running container ${shortId(u.running.id)}`);
    if (mask.refs && this.store.referencesOf(id).length > 0) return this.conflict(id, false, 'image is referenced in multiple repositories');
    if (mask.stopped && u.stopped) return this.conflict(id, false, `image is being used by stopped container ${shortId(u.stopped.id)}`);
    return null;
  }

  /** DELETE /images/{name}?force=&noprune= (dockerd's ImageDelete). */
  async remove(name: string, opts: { force?: boolean; noprune?: boolean } = {}): Promise<DeleteItem[]> {
    const force = !!opts.force;
    const prune = !opts.noprune;
    const id = await this.store.resolve(name);
    const records: DeleteItem[] = [];
    let refs = this.store.referencesOf(id);
    const isIdPrefix = hexOf(id).startsWith(name.replace(/^sha256:/, '')) && /^(sha256:)?[0-9a-f]+$/.test(name);
    if (!isIdPrefix) {
      if (!force && this.isSingleReference(refs)) {
        const u = await this.usage(id);
        const c = u.running ?? u.stopped;
        if (c) {
          throw new ConflictError(`conflict: unable to remove repository reference "${name}" (must force) - container ${shortId(c.id)} is using its referenced image ${shortId(id)}`);
        }
      }
      let parsed = parseReference(name);
      if (!parsed.tag && !parsed.digest) parsed = { ...parsed, tag: 'latest' };
      const removed = await this.store.removeReference(parsed);
      if (!removed) throw new NotFoundError(`No such image: ${name}`);
      records.push({ Untagged: familiarString(parsed) });
      refs = this.store.referencesOf(id);
      if (!parsed.digest) {
        const sameRepoTag = refs.some((r) => !r.digest && r.domain === parsed.domain && r.path === parsed.path);
        if (!sameRepoTag) {
          for (const r of refs.filter((x) => x.digest && x.domain === parsed.domain && x.path === parsed.path)) {
            await this.store.removeReference(r);
            records.push({ Untagged: familiarString(r) });
          }
          refs = this.store.referencesOf(id);
        }
      }
      if (refs.length > 0) return records;
      await this.deleteHelper(id, records, force, prune, true);
      return records;
    }
    if (this.isSingleReference(refs)) {
      const c = await this.checkConflict(id, { children: true, running: true, refs: false, stopped: !force });
      if (c) throw c;
      for (const r of refs) {
        await this.store.removeReference(r);
        records.push({ Untagged: familiarString(r) });
      }
    }
    await this.deleteHelper(id, records, force, prune, false);
    return records;
  }

  private async deleteHelper(id: Digest, records: DeleteItem[], force: boolean, prune: boolean, quiet: boolean): Promise<void> {
    const c = await this.checkConflict(id, { children: true, running: true, refs: !force, stopped: !force });
    if (c) {
      if (quiet) {
        const dangling = this.store.referencesOf(id).length === 0;
        const u = await this.usage(id);
        if (!dangling || u.running || u.stopped) return;
      }
      throw c;
    }
    const rec = await this.store.get(id);
    const parent = rec.meta.parent;
    for (const r of this.store.referencesOf(id)) {
      await this.store.removeReference(r);
      records.push({ Untagged: familiarString(r) });
    }
    const removedLayers = await this.store.deleteImage(id, await this.rootfs.pinnedLayers());
    records.push({ Deleted: id });
    for (const l of removedLayers) records.push({ Deleted: l });
    if (!prune || !parent || !(await this.store.exists(parent))) return;
    if (this.store.referencesOf(parent).length > 0) return;
    await this.deleteHelper(parent, records, false, true, true).catch(() => undefined);
  }

  /** POST /images/prune: dangling images (or all unused ones with dangling=false). */
  async prune(opts: { filters?: DockerFilters } = {}): Promise<{ ImagesDeleted: DeleteItem[] | null; SpaceReclaimed: number }> {
    const f: DockerFilters = opts.filters ?? new Map();
    checkFilterNames(f, ['dangling', 'label', 'label!', 'until']);
    const danglingOnly = boolFilter(f, 'dangling') ?? true;
    const until = parseDockerTimeMs(filterValues(f, 'until')[0], 'until', Date.now());
    const used = new Set((await this.containers()).map((c) => c.image));
    const deleted: DeleteItem[] = [];
    let reclaimed = 0;
    const layersBefore = new Map((await this.store.layers.list()).map((l) => [l.chainId, l.size]));
    for (const id of await this.store.ids()) {
      if (!(await this.store.exists(id))) continue;
      if (used.has(id)) continue;
      const r = await this.store.get(id).catch(() => null);
      if (!r) continue;
      const tags = this.store.referencesOf(id).filter((x) => x.tag);
      if (danglingOnly && tags.length > 0) continue;
      if (!matchLabels(f.get('label'), r.config.config?.Labels) || !matchNoLabel(f.get('label!'), r.config.config?.Labels)) continue;
      if (until !== null && !(createdSeconds(r.config) * 1000 < until)) continue;
      if ((await this.store.children(id)).length > 0) continue;
      try {
        const items = tags.length ? await this.removeAllRefs(id) : [];
        const recs: DeleteItem[] = [...items];
        await this.deleteHelper(id, recs, false, true, false);
        deleted.push(...recs);
      } catch (err) {
        if (err instanceof ConflictError) continue;
        throw err;
      }
    }
    const layersAfter = new Set((await this.store.layers.list()).map((l) => l.chainId));
    for (const [chain, size] of layersBefore) if (!layersAfter.has(chain)) reclaimed += size;
    return { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
  }

  private async removeAllRefs(id: Digest): Promise<DeleteItem[]> {
    const out: DeleteItem[] = [];
    for (const r of this.store.referencesOf(id)) {
      await this.store.removeReference(r);
      out.push({ Untagged: familiarString(r) });
    }
    return out;
  }
}
