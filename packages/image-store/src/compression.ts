/** Detects and removes layer compression: gzip (zlib), zstd (zlib when Node has it, else the zstd CLI), none. */
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { InvalidParameterError, NotImplementedError } from '@berth/core';

export type Compression = 'none' | 'gzip' | 'zstd' | 'bzip2' | 'xz';

export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 3 && head.toString('latin1', 0, 3) === 'BZh') return 'bzip2';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  return 'none';
}

/** Reads the first bytes of `src` and returns a stream of the whole content plus the detected compression. */
export async function peekCompression(src: Readable): Promise<{ stream: Readable; compression: Compression }> {
  const it = src[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first: Buffer[] = [];
  let len = 0;
  let done = false;
  while (len < 6) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    first.push(chunk);
    len += chunk.length;
  }
  const head = Buffer.concat(first);
  const stream = Readable.from(
    (async function* () {
      if (head.length) yield head;
      if (done) return;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    })(),
    { objectMode: false },
  );
  return { stream, compression: detectCompression(head) };
}

function zstdStream(src: Readable): Readable {
  const z = zlib as unknown as { createZstdDecompress?: () => NodeJS.ReadWriteStream };
  if (typeof z.createZstdDecompress === 'function') {
    return src.pipe(z.createZstdDecompress() as unknown as import('node:stream').Transform);
  }
  const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const out = child.stdout;
  child.on('error', (err) =>
    out.destroy(new NotImplementedError(`zstd-compressed layers need zstd support (Node ≥ 22.15 or the zstd CLI): ${err.message}`)),
  );
  child.on('exit', (code) => {
    if (code !== 0) out.destroy(new InvalidParameterError(`zstd decompression failed: ${stderr.trim() || `exit ${code}`}`));
  });
  child.stdin.on('error', () => undefined);
  src.on('error', (err) => out.destroy(err));
  src.pipe(child.stdin);
  return out;
}

/** A stream of the uncompressed bytes of `src`, whatever its (supported) compression. */
export async function decompress(src: Readable): Promise<{ stream: Readable; compression: Compression }> {
  const { stream, compression } = await peekCompression(src);
  switch (compression) {
    case 'none':
      return { stream, compression };
    case 'gzip': {
      const gunzip = zlib.createGunzip();
      stream.on('error', (err) => gunzip.destroy(err));
      return { stream: stream.pipe(gunzip), compression };
    }
    case 'zstd':
      return { stream: zstdStream(stream), compression };
    default:
      stream.destroy();
      throw new NotImplementedError(`unsupported layer compression: ${compression}`);
  }
}
