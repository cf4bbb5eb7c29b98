/**
 * .dockerignore with moby's pattern rules (cases from moby's fileutils/patternmatcher tests and
 * docs): `**`, `!` exceptions, a leading `/`, a trailing `/`, a parent directory's match; and
 * applied to a context tree (an exception inside an excluded directory keeps that file).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { afterEach, describe, expect, it } from 'vitest';
import { applyDockerignore, dockerignorePatterns, ignoreMatcher } from '../src/context.js';
import { TarTree } from '../src/tree.js';

describe('ignoreMatcher', () => {
  it.each([
    [['*.md'], 'README.md', true],
    [['*.md'], 'docs/README.md', false],
    [['**/*.md'], 'docs/a/README.md', true],
    [['**/*.md'], 'README.md', true],
    [['docs'], 'docs/a/b.txt', true],
    [['docs/'], 'docs/a.txt', true],
    [['/docs'], 'docs/a.txt', true],
    [['./docs'], 'docs/a.txt', true],
    [['*/temp*'], 'somedir/temporary.txt', true],
    [['*/*/temp*'], 'somedir/subdir/temporary.txt', true],
    [['temp?'], 'tempa', true],
    [['temp?'], 'tempab', false],
    [['*.md', '!README.md'], 'README.md', false],
    [['*.md', '!README.md'], 'CHANGES.md', true],
    [['!README.md', '*.md'], 'README.md', true],
    [['docs', '!docs/keep.txt'], 'docs/keep.txt', false],
    [['docs', '!docs/keep.txt'], 'docs/drop.txt', true],
    [['**'], 'anything/at/all', true],
    [['a/**/b'], 'a/x/y/b', true],
    [['a/**/b'], 'a/b', true],
  ])('%j on %s → %s', (patterns, file, ignored) => {
    expect(ignoreMatcher(patterns)(file)).toBe(ignored);
  });

  it('drops comments and blank lines', () => {
    expect(dockerignorePatterns('# c\n\n *.tmp \r\n!x\n')).toEqual(['*.tmp', '!x']);
  });
});

describe('applyDockerignore', () => {
  let dir = '';
  afterEach(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('drops excluded files and keeps an exception inside an excluded directory', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ignore-'));
    const pack = tar.pack();
    for (const f of ['a.txt', 'secret.key', 'logs/x.log', 'logs/keep.log', 'src/b.ts', 'src/deep/c.md', 'node_modules/m/i.js']) pack.entry({ name: f }, f);
    pack.finalize();
    const tree = await TarTree.read(pack as unknown as Readable, path.join(dir, 'spool'));
    await applyDockerignore(tree, ['*.key', 'logs', '!logs/keep.log', 'node_modules/', '**/*.md']);
    const files: string[] = [];
    for (const p of tree.paths()) if ((await tree.lstat(p))?.type === 'file') files.push(p);
    expect(files).toEqual(['a.txt', 'logs/keep.log', 'src/b.ts']);
  });
});
