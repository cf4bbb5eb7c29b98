/**
 * Hostile and ordinary build contexts: a gzip context, `../` entries refused with nothing
 * written outside, a Dockerfile that is a symlink pointing outside read inside the context,
 * and COPY/ADD sources (links copied as links, parents resolved inside, wildcards, ADD's
 * archive unpacking, remote URLs refused).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import { prepareContext } from '../src/context.js';
import { collect } from '../src/copy.js';
import { FsTree } from '../src/tree.js';

async function tarOf(entries: Array<{ name: string; body?: string; link?: string; dir?: boolean }>): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.link !== undefined) pack.entry({ name: e.name, type: 'symlink', linkname: e.link });
    else if (e.dir) pack.entry({ name: e.name, type: 'directory', mode: 0o755 });
    else pack.entry({ name: e.name, mode: 0o644 }, e.body ?? '');
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

let dir = '';
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ctx-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const ctxDir = () => {
  const d = path.join(dir, 'ctx');
  fs.mkdirSync(d, { recursive: true });
  return d;
};

describe('prepareContext', () => {
  it('reads a gzip-compressed context, a Dockerfile by another path, and applies .dockerignore', async () => {
    const t = await tarOf([
      { name: 'build/My.Dockerfile', body: 'FROM x\n' },
      { name: '.dockerignore', body: '*.log\n' },
      { name: 'keep.txt', body: 'k' },
      { name: 'drop.log', body: 'd' },
    ]);
    const c = await prepareContext(Readable.from([gzipSync(t)]), ctxDir(), './build/My.Dockerfile');
    expect(c.text).toBe('FROM x\n');
    expect(await c.tree.lstat('keep.txt')).toMatchObject({ type: 'file', size: 1 });
    expect(await c.tree.lstat('drop.log')).toBeNull();
    // nothing of the context is written as a file of its own: one spool file
    expect(fs.readdirSync(path.join(dir, 'ctx'))).toEqual(['context.spool']);
  });

  it('refuses ../ entries and writes nothing outside the context', async () => {
    const t = await tarOf([{ name: 'Dockerfile', body: 'FROM x\n' }, { name: '../outside.txt', body: 'x' }]);
    let err: unknown;
    await prepareContext(Readable.from([t]), ctxDir(), 'Dockerfile').catch((e: unknown) => (err = e));
    expect(errorKind(err)).toBe('InvalidParameter');
    expect(fs.existsSync(path.join(dir, 'outside.txt'))).toBe(false);
  });

  it('a Dockerfile that is a link pointing outside is read inside the context (here: missing → 400)', async () => {
    const t = await tarOf([{ name: 'Dockerfile', link: '/etc/passwd' }]);
    let err: unknown;
    await prepareContext(Readable.from([t]), ctxDir(), 'Dockerfile').catch((e: unknown) => (err = e));
    expect(errorKind(err)).toBe('InvalidParameter');
    expect((err as Error).message).toBe('Cannot locate specified Dockerfile: Dockerfile');
  });
});

describe('COPY/ADD sources', () => {
  const req = (root: string, sources: string[], dest: string, add = false) => ({ tree: new FsTree(root), sources, dest, chown: null, add, scratch: path.join(dir, 'scratch') });

  it('copies a symlink as a link and resolves parent links inside the root', async () => {
    const root = ctxDir();
    fs.symlinkSync('/etc', path.join(root, 'etcdir'));
    fs.symlinkSync('/etc/hostname', path.join(root, 'abs'));
    const items = await collect(req(root, ['abs'], '/x'));
    expect(items.map((i) => [i.dest, i.st.type, i.st.linkname])).toEqual([['x', 'symlink', '/etc/hostname']]);
    // etcdir → /etc of the context, which has no passwd: never the host's /etc/passwd
    await expect(collect(req(root, ['etcdir/passwd'], '/p'))).rejects.toThrow(/file not found in build context/);
    fs.mkdirSync(path.join(root, 'etc'));
    fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'inside');
    const inside = await collect(req(root, ['etcdir/passwd'], '/p'));
    expect(inside[0].src).toBe('etc/passwd');
  });

  it('expands wildcards, needs a directory destination for several sources, copies a directory\'s contents', async () => {
    const root = ctxDir();
    for (const f of ['a.conf', 'b.conf', 'c.txt', 'd/e.txt']) {
      fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
      fs.writeFileSync(path.join(root, f), f);
    }
    expect((await collect(req(root, ['*.conf'], '/etc/app/'))).map((i) => i.dest)).toEqual(['etc/app/a.conf', 'etc/app/b.conf']);
    await expect(collect(req(root, ['*.conf'], '/etc/app'))).rejects.toThrow(/must be a directory and end with a \//);
    expect((await collect(req(root, ['d'], '/dst'))).map((i) => i.dest)).toEqual(['dst', 'dst/e.txt']);
    await expect(collect(req(root, ['https://example.invalid/x'], '/x'))).rejects.toThrow(/remote URL/);
  });

  it('ADD unpacks a local tar archive into the destination; COPY copies it as a file', async () => {
    const root = ctxDir();
    fs.writeFileSync(path.join(root, 'a.tar.gz'), gzipSync(await tarOf([{ name: 'in/f.txt', body: 'f' }])));
    fs.mkdirSync(path.join(dir, 'scratch'));
    expect((await collect(req(root, ['a.tar.gz'], '/opt/', true))).map((i) => i.dest)).toEqual(['opt', 'opt/in', 'opt/in/f.txt']);
    expect((await collect(req(root, ['a.tar.gz'], '/opt/'))).map((i) => i.dest)).toEqual(['opt/a.tar.gz']);
  });
});
