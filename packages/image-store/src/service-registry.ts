/**
 * ImageService's registry half: `docker pull`, `push` and `login` (POST /auth) over the
 * registry client, with Docker's JSON progress. Package-internal: ImageService is the one
 * entry (src/service.ts).
 */
import { InvalidParameterError, NotFoundError } from '@berth/core';
import type { Digest } from './digest.js';
import { pullImage, pushImage, pushIntro } from './distribution.js';
import type { LocalImageStore } from './images.js';
import { hostPlatform, parsePlatform } from './platform.js';
import { noProgress, type ProgressFn } from './progress.js';
import { familiarString, parseReference, referenceString, type Reference } from './reference.js';
import type { AuthConfig } from './registry/auth.js';
import type { RegistryClient } from './registry/client.js';
import type { RootfsManager } from './rootfs.js';
import { collectOnFailure } from './service-writers.js';

export class ImageRegistryOps {
  constructor(
    private readonly store: LocalImageStore,
    private readonly rootfs: RootfsManager,
    private readonly registry: RegistryClient,
  ) {}

  /** POST /images/create?fromImage=&tag=&platform= (docker pull) with JSON progress. */
  async pull(fromImage: string, opts: { tag?: string; platform?: string; auth?: AuthConfig | null; progress?: ProgressFn; signal?: AbortSignal } = {}): Promise<Digest> {
    let ref: Reference;
    try {
      ref = parseReference(fromImage);
      if (opts.tag) {
        if (/^sha256:[0-9a-f]{64}$/.test(opts.tag)) ref = { ...ref, digest: opts.tag as Digest };
        else ref = parseReference(`${referenceString({ domain: ref.domain, path: ref.path })}:${opts.tag}`);
      }
    } catch (err) {
      throw new InvalidParameterError((err as Error).message);
    }
    if (!ref.tag && !ref.digest) ref = { ...ref, tag: 'latest' };
    const platform = opts.platform ? parsePlatform(opts.platform) : hostPlatform();
    const { id } = await collectOnFailure(this.store, this.rootfs, () => pullImage(this.store, this.registry, ref, { platform, auth: opts.auth ?? null, progress: opts.progress ?? noProgress, ...(opts.signal ? { signal: opts.signal } : {}) }));
    return id;
  }

  /** POST /images/{name}/push?tag= (docker push) with JSON progress; all tags of the repository without tag. */
  async push(name: string, opts: { tag?: string; auth?: AuthConfig | null; progress?: ProgressFn; signal?: AbortSignal } = {}): Promise<void> {
    const progress = opts.progress ?? noProgress;
    let ref: Reference;
    try {
      ref = parseReference(opts.tag ? `${name}:${opts.tag}` : name);
    } catch (err) {
      throw new InvalidParameterError((err as Error).message);
    }
    const tags: Array<Reference & { tag: string }> = ref.tag
      ? [{ domain: ref.domain, path: ref.path, tag: ref.tag }]
      : this.store
          .allReferences()
          .filter((r) => r.ref.domain === ref.domain && r.ref.path === ref.path && r.ref.tag)
          .map((r) => ({ domain: r.ref.domain, path: r.ref.path, tag: r.ref.tag! }));
    if (tags.length === 0) throw new NotFoundError(`An image does not exist locally with the tag: ${familiarString(ref)}`);
    for (const t of tags) if (!this.store.lookupReference(t)) throw new NotFoundError(`An image does not exist locally with the tag: ${familiarString(t)}`);
    progress({ status: pushIntro(ref) });
    for (const t of tags) await pushImage(this.store, this.registry, t, { auth: opts.auth ?? null, progress, ...(opts.signal ? { signal: opts.signal } : {}) });
  }

  /** POST /auth */
  async login(auth: AuthConfig): Promise<{ Status: string; IdentityToken: string }> {
    return this.registry.login(auth);
  }
}
