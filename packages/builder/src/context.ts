/**
 * The build context: the request's tar (plain or compressed, as `docker load` reads it)
 * unpacked with image-store's tar-safety (`unpackLayer`: no entry or link lands outside the
 * directory) into a temp dir under the data root, then `.dockerignore` applied with Docker's
 * pattern rules (@balena/dockerignore, a port of moby's matcher). The caller removes the dir.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import dockerignore from '@balena/dockerignore';
import { InvalidParameterError } from '@berth/core';
import { unpackLayer } from '@berth/image-store';
import { resolveInside } from './fs-inside.js';

/** The patterns of a .dockerignore file (comments and blank lines dropped). */
export function dockerignorePatterns(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

export function ignoreMatcher(patterns: string[]): (rel: string) => boolean {
  // a CommonJS module: its factory is module.exports, also reachable as .default (what the types describe)
  const ig = dockerignore.default().add(patterns);
  return (rel) => ig.ignores(rel);
}

/** Removes what the patterns exclude from the tree at `root` (files inside an excluded dir that an exception names stay). */
export async function applyDockerignore(root: string, patterns: string[]): Promise<void> {
  if (patterns.length === 0) return;
  const ignored = ignoreMatcher(patterns);
  const hasExceptions = patterns.some((p) => p.startsWith('!'));
  const walk = async (rel: string): Promise<boolean> => {
    const full = rel ? path.join(root, rel) : root;
    let empty = true;
    for (const ent of await fsp.readdir(full, { withFileTypes: true })) {
      const r = rel ? `${rel}/${ent.name}` : ent.name;
      const isDir = ent.isDirectory();
      if (ignored(r)) {
        if (isDir && hasExceptions) {
          if (await walk(r)) await fsp.rm(path.join(root, r), { recursive: true, force: true });
          else empty = false;
        } else await fsp.rm(path.join(root, r), { recursive: true, force: true });
        continue;
      }
      empty = false;
      if (isDir) await walk(r);
    }
    return empty;
  };
  await walk('');
}

export interface BuildContext {
  dir: string;
  dockerfile: string;
  /** The Dockerfile's text. */
  text: string;
}

/**
 * Unpacks `src` into `dir` (which must exist and be empty), reads the Dockerfile named
 * `dockerfile` (a path inside the context) and applies .dockerignore.
 */
export async function prepareContext(src: Readable, dir: string, dockerfile = 'Dockerfile'): Promise<BuildContext> {
  await unpackLayer(src, dir, { devices: false, chown: false, xattrs: false, overlayWhiteouts: false });
  const name = dockerfile.replace(/^\.\//, '');
  let file: string;
  try {
    file = await resolveInside(dir, name);
  } catch (err) {
    if (err instanceof InvalidParameterError) throw err;
    throw new InvalidParameterError(`Cannot locate specified Dockerfile: ${name}`);
  }
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch {
    throw new InvalidParameterError(`Cannot locate specified Dockerfile: ${name}`);
  }
  const ignoreText = await fsp.readFile(path.join(dir, '.dockerignore'), 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  await applyDockerignore(dir, dockerignorePatterns(ignoreText));
  return { dir, dockerfile: name, text };
}

