/** sha256 digests: validation, hashing, chain IDs. */
import { createHash } from 'node:crypto';
import { InvalidParameterError } from '@berth/core';

export type Digest = `sha256:${string}`;

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

export function isDigest(s: unknown): s is Digest {
  return typeof s === 'string' && DIGEST_RE.test(s);
}

/** Throws InvalidParameterError unless `s` is a sha256 digest (other algorithms are refused). */
export function assertDigest(s: unknown, what = 'digest'): Digest {
  if (!isDigest(s)) {
    throw new InvalidParameterError(`invalid ${what}: ${JSON.stringify(s)} (expected sha256:<64 hex>)`);
  }
  return s;
}

export function sha256(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function hexOf(d: Digest): string {
  return d.slice('sha256:'.length);
}

/** OCI chain IDs: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)). */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev ? sha256(`${prev} ${d}`) : d);
  }
  return out;
}
