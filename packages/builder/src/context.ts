/**
 * The build context: the request's tar (plain or compressed) read once into a TarTree (one
 * spool file under the data root plus an index; entry names checked with image-store's
 * tar-safety — nothing of the context is ever written as its own file, so no entry can land
 * outside), then `.dockerignore` applied with Docker's pattern rules (@balena/dockerignore, a
 * port of moby's matcher). The caller removes the directory.
 */
import path from 'node:path';
import type { Readable } from 'node:stream';
import dockerignore from '@balena/dockerignore';
import { InvalidParameterError } from '@berth/core';
import { resolveInside } from './fs-inside.js';
import { TarTree, type SourceTree } from './tree.js';

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

/** Drops what the patterns exclude from the tree (files inside an excluded dir that an exception names stay). */
export async function applyDockerignore(tree: TarTree, patterns: string[]): Promise<void> {
  if (patterns.length === 0) return;
  const ignored = ignoreMatcher(patterns);
  const hasExceptions = patterns.some((p) => p.startsWith('!'));
  const walk = async (rel: string): Promise<boolean> => {
    let empty = true;
    for (const name of await tree.readdir(rel)) {
      const r = rel ? `${rel}/${name}` : name;
      const isDir = (await tree.lstat(r))?.type === 'dir';
      if (ignored(r)) {
        if (isDir && hasExceptions && !(await walk(r))) empty = false;
        else tree.drop(r);
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
  tree: SourceTree;
  dockerfile: string;
  /** The Dockerfile's text. */
  text: string;
}

/**
 * Reads the context tar `src` into `dir` (which must exist), reads the Dockerfile named
 * `dockerfile` (a path inside the context) and applies .dockerignore.
 */
export async function prepareContext(src: Readable, dir: string, dockerfile = 'Dockerfile'): Promise<BuildContext> {
  const tree = await TarTree.read(src, path.join(dir, 'context.spool'));
  const name = dockerfile.replace(/^\.\//, '');
  const text = await tree.text(await resolveInside(tree, name));
  if (text === null) throw new InvalidParameterError(`Cannot locate specified Dockerfile: ${name}`);
  const ignoreText = (await tree.text(await resolveInside(tree, '.dockerignore'))) ?? '';
  await applyDockerignore(tree, dockerignorePatterns(ignoreText));
  return { tree, dockerfile: name, text };
}
