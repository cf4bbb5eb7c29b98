/**
 * The build cache: a step's key (parent image ID, the instruction as it runs, for COPY/ADD the
 * checksum of the files; see cacheKey) → the image ID the step made. Kept in
 * `<data-root>/builder/cache.json` (written atomically); an entry whose image is gone is a miss.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { atomicWriteFile } from '@berth/core';
import type { Digest } from '@berth/image-store';

export interface CacheKeyInput {
  parent: Digest | null;
  /** The instruction after substitution, as it runs (RUN's argv, ENV's pairs, COPY's destination…). */
  instruction: unknown;
  /** COPY/ADD: checksum of what is copied. */
  files?: string;
}

export function cacheKey(k: CacheKeyInput): string {
  return createHash('sha256').update(JSON.stringify([k.parent ?? 'scratch', k.instruction, k.files ?? null])).digest('hex');
}

export class BuildCache {
  private entries: Record<string, Digest> | null = null;
  private readonly file: string;

  constructor(dataRoot: string, private readonly exists: (id: Digest) => Promise<boolean>) {
    this.file = path.join(dataRoot, 'builder', 'cache.json');
  }

  private async load(): Promise<Record<string, Digest>> {
    if (this.entries) return this.entries;
    try {
      const v: unknown = JSON.parse(await fsp.readFile(this.file, 'utf8'));
      this.entries = v && typeof v === 'object' ? (v as Record<string, Digest>) : {};
    } catch {
      this.entries = {};
    }
    return this.entries;
  }

  async get(key: string): Promise<Digest | null> {
    const id = (await this.load())[key];
    return id && (await this.exists(id)) ? id : null;
  }

  async set(key: string, id: Digest): Promise<void> {
    // re-read: another build may have added entries since
    this.entries = null;
    const entries = await this.load();
    entries[key] = id;
    await fsp.mkdir(path.dirname(this.file), { recursive: true });
    await atomicWriteFile(this.file, JSON.stringify(entries));
  }
}
