/**
 * A remapped container's layer (commit): upperDirTar and treeDiffTar record the container's
 * owners, not the mapped host IDs on disk; an owner outside the mapping fails the layer, as
 * dockerd's. Chowning to mapped IDs needs root: skipped otherwise.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { ownerToContainer } from '@berth/core';
import { treeDiffTar, upperDirTar } from '../src/index.js';

const skip = process.getuid?.() !== 0 ? 'needs root to chown files to mapped IDs' : '';
const maps = { uid: [{ containerID: 0, hostID: 100000, size: 65536 }], gid: [{ containerID: 0, hostID: 200000, size: 65536 }] };

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-difftar-owner-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** name → "uid:gid" of a layer tar. */
async function owners(stream: Readable): Promise<Record<string, string>> {
  const ex = tar.extract();
  const out: Record<string, string> = {};
  const done = (async () => {
    for await (const e of ex) {
      out[e.header.name] = `${e.header.uid}:${e.header.gid}`;
      e.resume();
    }
  })();
  stream.on('error', (err) => ex.destroy(err));
  stream.pipe(ex as unknown as NodeJS.WritableStream);
  await done;
  return out;
}

function tree(name: string, files: Record<string, [number, number]>): string {
  const root = path.join(dir, name);
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  for (const [f, [uid, gid]] of Object.entries(files)) {
    fs.writeFileSync(path.join(root, f), f);
    fs.chownSync(path.join(root, f), uid, gid);
  }
  return root;
}

describe.skipIf(!!skip)(`layer tar of a remapped container${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('upperDirTar: host owners become the container’s', async () => {
    const upper = tree('upper', { 'etc/made-by-root': [100000, 200000], 'etc/by-app': [101000, 200050] });
    fs.chownSync(path.join(upper, 'etc'), 100000, 200000);
    expect(await owners(upperDirTar(upper, ownerToContainer(maps, 'error')))).toEqual({ 'etc/': '0:0', 'etc/made-by-root': '0:0', 'etc/by-app': '1000:50' });
    // without a translation the layer keeps what is on disk
    expect(await owners(upperDirTar(upper))).toMatchObject({ 'etc/made-by-root': '100000:200000' });
  });

  it('upperDirTar: an owner outside the mapping fails the layer', async () => {
    const upper = tree('upper', { 'etc/host-root': [0, 0] });
    await expect(owners(upperDirTar(upper, ownerToContainer(maps, 'error')))).rejects.toThrow();
  });

  it('treeDiffTar: a file whose translated owner equals the image’s is unchanged; a new one has the container owner', async () => {
    const base = tree('base', { 'etc/same': [0, 0] });
    const merged = tree('merged', { 'etc/same': [100000, 200000], 'etc/new': [100003, 200004] });
    // one whole-second time on both (copying a Date through utimes can land a millisecond off)
    for (const f of [path.join(base, 'etc/same'), path.join(merged, 'etc/same')]) fs.utimesSync(f, 1_700_000_000, 1_700_000_000);
    fs.chownSync(path.join(merged, 'etc'), 100000, 200000);
    expect(await owners(treeDiffTar(merged, base, ownerToContainer(maps, 'error')))).toEqual({ 'etc/': '0:0', 'etc/new': '3:4' });
  });
});
