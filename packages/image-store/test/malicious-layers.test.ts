/**
 * Malicious layers: each must be refused with a clear error, write nothing outside the layer
 * directory, and leave the store consistent (no layer, no temp dirs, no stray blobs).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import { sha256, type Digest } from '../src/digest.js';
import { LocalImageStore } from '../src/images.js';
import { gzip, listTree, makeTar, storePerTest, streamOf, type TarEntry } from './helpers.js';

let base: string;
let outside: string;
let store: LocalImageStore;

storePerTest(async (s) => {
  ({ base, store } = s);
  outside = path.join(base, 'outside');
  await fsp.mkdir(outside);
  await fsp.writeFile(path.join(outside, 'victim'), 'original');
});

async function expectConsistent(): Promise<void> {
  expect(await store.layers.list()).toEqual([]);
  expect((await fsp.readdir(store.layers.dir)).filter((n) => n.startsWith('tmp-'))).toEqual([]);
  expect(await fsp.readdir(path.join(store.root, 'blobs', 'tmp'))).toEqual([]);
  expect(await store.blobs.list()).toEqual([]);
  expect(await listTree(outside)).toEqual(['victim']);
  expect(await fsp.readFile(path.join(outside, 'victim'), 'utf8')).toBe('original');
  // nothing appeared next to the data root either
  expect((await fsp.readdir(base)).sort()).toEqual(['data', 'outside']);
}

async function refuse(entries: TarEntry[] | Buffer, pattern: RegExp, opts: { expectedDiffId?: Digest; devices?: boolean } = {}) {
  const buf = Buffer.isBuffer(entries) ? entries : await makeTar(entries);
  const err = await store.layers
    .register(streamOf(buf), null, {
      ...(opts.expectedDiffId ? { expectedDiffId: opts.expectedDiffId } : {}),
      ...(opts.devices !== undefined ? { unpack: { devices: opts.devices } } : {}),
    })
    .then(
      () => null,
      (e: unknown) => e,
    );
  expect(err, 'the layer must be refused').toBeInstanceOf(Error);
  expect((err as Error).message).toMatch(pattern);
  expect(errorKind(err)).toBe('InvalidParameter');
  await expectConsistent();
}

describe('malicious layers are refused', () => {
  it('path traversal through ../', async () => {
    await refuse([{ name: '../../outside/victim', content: 'pwned' }], /traversal through "\.\."/);
    await refuse([{ name: 'a/../../outside/new', content: 'pwned' }], /traversal/);
  });

  it('an absolute path', async () => {
    await refuse([{ name: `${outside}/new`, content: 'pwned' }], /absolute path is not allowed/);
  });

  it('an absolute symlink, then a write through it', async () => {
    await refuse(
      [
        { name: 'evil', type: 'symlink', linkname: outside },
        { name: 'evil/victim', content: 'pwned' },
      ],
      /evil is a symlink; refusing to write through it/,
    );
  });

  it('a relative symlink that escapes, then a write through it (also for a directory entry)', async () => {
    await refuse(
      [
        { name: 'up', type: 'symlink', linkname: '../../../../outside' },
        { name: 'up/new/', type: 'directory' },
      ],
      /symlink/,
    );
  });

  it('a hard link to a file outside (relative, absolute, and through a symlinked dir)', async () => {
    await refuse([{ name: 'h', type: 'link', linkname: '../../outside/victim' }], /hard link target traversal/);
    await refuse([{ name: 'h', type: 'link', linkname: path.join(outside, 'victim') }], /absolute hard link target/);
    await refuse(
      [
        { name: 'd', type: 'symlink', linkname: outside },
        { name: 'h', type: 'link', linkname: 'd/victim' },
      ],
      /symlink/,
    );
  });

  it('a hard link to a path that is not in the layer', async () => {
    await refuse([{ name: 'h', type: 'link', linkname: 'etc/shadow' }], /does not exist in the layer/);
  });

  it('device nodes where they are not allowed', async () => {
    await refuse([{ name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660 }], /device nodes are not allowed/, { devices: false });
    await refuse([{ name: 'dev/mem', type: 'character-device', devmajor: 1, devminor: 1 }], /device nodes are not allowed/, { devices: false });
  });

  it('a truncated tar (raw and gzip)', async () => {
    const t = await makeTar([{ name: 'big', content: Buffer.alloc(10_000, 1) }]);
    await refuse(t.subarray(0, 2048), /invalid layer archive/);
    const gz = gzip(t);
    await refuse(gz.subarray(0, gz.length - 20), /invalid layer archive/);
  });

  it('a layer whose content does not match its DiffID', async () => {
    const t = await makeTar([{ name: 'a', content: 'a' }]);
    const wrong = sha256('something else');
    await refuse(t, /digest mismatch/, { expectedDiffId: wrong });
  });

  it('a whiteout that tries to escape', async () => {
    await refuse([{ name: '../.wh.victim' }], /traversal/);
  });

  it('the store still works after refusals', async () => {
    await refuse([{ name: '../x', content: 'x' }], /traversal/);
    const t = await makeTar([{ name: 'ok', content: 'fine' }]);
    const m = await store.layers.register(streamOf(t), null, { expectedDiffId: sha256(t) });
    expect(m.diffId).toBe(sha256(t));
    expect(await fsp.readFile(path.join(store.layers.diffDir(m.chainId), 'ok'), 'utf8')).toBe('fine');
    expect(await store.blobs.read(m.diffId)).toEqual(t);
  });
});
