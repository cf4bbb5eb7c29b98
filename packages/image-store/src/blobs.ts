/**
 * Content-addressed blob store: `<root>/blobs/sha256/<hex>`. Every write is hashed while it
 * streams and only renamed into place when the digest matches; every read can be verified.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidParameterError, NotFoundError } from '@berth/core';
import { assertDigest, hexOf, sha256, type Digest } from './digest.js';
import { fsyncDir, randomId } from './fsutil.js';

export class DigestMismatchError extends InvalidParameterError {
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`digest mismatch: expected ${expected}, got ${actual}`);
  }
}

export class BlobStore {
  readonly dir: string;
  private readonly tmpDir: string;

  constructor(root: string) {
    this.dir = path.join(root, 'blobs', 'sha256');
    this.tmpDir = path.join(root, 'blobs', 'tmp');
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true });
    await fsp.rm(this.tmpDir, { recursive: true, force: true });
    await fsp.mkdir(this.tmpDir, { recursive: true });
  }

  path(digest: Digest): string {
    return path.join(this.dir, hexOf(assertDigest(digest)));
  }

  async has(digest: Digest): Promise<boolean> {
    try {
      const st = await fsp.stat(this.path(digest));
      return st.isFile();
    } catch {
      return false;
    }
  }

  async size(digest: Digest): Promise<number> {
    try {
      return (await fsp.stat(this.path(digest))).size;
    } catch {
      throw new NotFoundError(`blob unknown: ${digest}`);
    }
  }

  /** Stores a buffer; returns its digest. When `expected` is given, a mismatch is refused. */
  async putBuffer(data: Buffer, expected?: Digest): Promise<Digest> {
    const d = sha256(data);
    if (expected && d !== expected) throw new DigestMismatchError(expected, d);
    if (await this.has(d)) return d;
    const tmp = path.join(this.tmpDir, randomId());
    try {
      const fh = await fsp.open(tmp, 'w', 0o644);
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, this.path(d));
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    await fsyncDir(this.dir);
    return d;
  }

  /**
   * Streams into the store, hashing on the way. With `expected` the blob only lands when the
   * digest matches (and `expectedSize`, when given). `onBytes` reports progress.
   */
  async putStream(
    src: Readable,
    opts: { expected?: Digest; expectedSize?: number; onBytes?: (n: number) => void } = {},
  ): Promise<{ digest: Digest; size: number }> {
    const tmp = path.join(this.tmpDir, randomId());
    const hash = createHash('sha256');
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        opts.onBytes?.(chunk.length);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(src, tap, createWriteStream(tmp, { mode: 0o644 }));
      const digest = `sha256:${hash.digest('hex')}` as Digest;
      if (opts.expected && digest !== opts.expected) throw new DigestMismatchError(opts.expected, digest);
      if (opts.expectedSize !== undefined && opts.expectedSize >= 0 && size !== opts.expectedSize) {
        throw new InvalidParameterError(`size mismatch for ${digest}: expected ${opts.expectedSize} bytes, got ${size}`);
      }
      const fh = await fsp.open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, this.path(digest));
      return { digest, size };
    } finally {
      await fsp.rm(tmp, { force: true });
    }
  }

  /** Reads a whole blob and verifies its digest. */
  async read(digest: Digest): Promise<Buffer> {
    let data: Buffer;
    try {
      data = await fsp.readFile(this.path(digest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`blob unknown: ${digest}`);
      throw err;
    }
    const actual = sha256(data);
    if (actual !== digest) throw new DigestMismatchError(digest, actual);
    return data;
  }

  async readJson<T>(digest: Digest): Promise<T> {
    return JSON.parse((await this.read(digest)).toString('utf8')) as T;
  }

  /**
   * A read stream that errors at the end when the content does not hash to the digest
   * (the consumer sees the error before the stream ends).
   */
  createVerifiedReadStream(digest: Digest): Readable {
    const file = this.path(digest);
    const hash = createHash('sha256');
    const verify = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
      flush(cb) {
        const actual = `sha256:${hash.digest('hex')}`;
        cb(actual === digest ? null : new DigestMismatchError(digest, actual));
      },
    });
    const rs = createReadStream(file);
    rs.on('error', (err) => verify.destroy((err as NodeJS.ErrnoException).code === 'ENOENT' ? new NotFoundError(`blob unknown: ${digest}`) : err));
    return rs.pipe(verify);
  }

  /** Moves a file whose digest the caller has just computed into the store (same filesystem). */
  async adopt(file: string, digest: Digest): Promise<void> {
    await fsp.rename(file, this.path(digest));
    await fsyncDir(this.dir);
  }

  /** A temp path on the store's filesystem, for writers that hash on their own. */
  tempPath(): string {
    return path.join(this.tmpDir, randomId());
  }

  async delete(digest: Digest): Promise<void> {
    await fsp.rm(this.path(digest), { force: true });
  }

  async list(): Promise<Digest[]> {
    const names = await fsp.readdir(this.dir);
    return names.filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => `sha256:${n}` as Digest);
  }
}
