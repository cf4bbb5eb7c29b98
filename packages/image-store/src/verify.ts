/** A pass-through that hashes what flows and fails at the end when the digest (or size) differs. */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { DigestMismatchError } from './blobs.js';
import type { Digest } from './digest.js';

export function verifier(expected: Digest, expectedSize?: number, onBytes?: (n: number) => void): Transform {
  const hash = createHash('sha256');
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      size += chunk.length;
      onBytes?.(chunk.length);
      cb(null, chunk);
    },
    flush(cb) {
      const actual = `sha256:${hash.digest('hex')}`;
      if (actual !== expected) return cb(new DigestMismatchError(expected, actual));
      if (expectedSize !== undefined && expectedSize >= 0 && size !== expectedSize) {
        return cb(new DigestMismatchError(`${expected} (${expectedSize} bytes)`, `${actual} (${size} bytes)`));
      }
      cb();
    },
  });
}
