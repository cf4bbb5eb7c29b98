/**
 * Reads the package.json inside an npm package tarball (`pnpm pack` / `npm pack` output: a
 * gzipped ustar archive whose entries live under `package/`), so `--tarballs DIR` can map
 * each tarball to the package it holds by its manifest rather than by its file name.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { CreatePluginError } from './errors.js';

const BLOCK = 512;

/** A NUL-terminated ASCII field of a tar header. */
function field(buf: Buffer, start: number, length: number): string {
  const raw = buf.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? raw.length : end).toString('utf8');
}

/** The `package.json` of the package in `file`, parsed; an Error naming the file when it has none. */
export async function manifestOfTarball(file: string): Promise<{ name: string; version: string }> {
  const tar = gunzipSync(await readFile(file));
  for (let off = 0; off + BLOCK <= tar.length; ) {
    const header = tar.subarray(off, off + BLOCK);
    if (header.every((b) => b === 0)) break;
    const name = field(header, 0, 100);
    const prefix = field(header, 345, 155);
    const size = parseInt(field(header, 124, 12).trim() || '0', 8);
    const path = prefix ? `${prefix}/${name}` : name;
    const body = off + BLOCK;
    if (path === 'package/package.json') {
      const manifest = JSON.parse(tar.subarray(body, body + size).toString('utf8')) as { name?: unknown; version?: unknown };
      if (typeof manifest.name !== 'string' || typeof manifest.version !== 'string') throw new CreatePluginError(`${file}: package.json has no name or version`);
      return { name: manifest.name, version: manifest.version };
    }
    off = body + Math.ceil(size / BLOCK) * BLOCK;
  }
  throw new CreatePluginError(`${file}: not an npm package tarball (no package/package.json)`);
}
