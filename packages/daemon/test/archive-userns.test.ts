/**
 * docker cp and export of a remapped container (a record with IdMappings, on the fake port):
 * PUT gives each entry the host owner of its container owner (root by default, the tar's with
 * copyUIDGID; an owner outside the mapping fails as dockerd's), GET and export show host owners
 * as the container's. Chowning to other users needs root: skipped otherwise.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tar from 'tar-stream';
import { buildApp, openInjector, apiRoutes, type Injector } from '../src/index.js';
import { fakePort, record } from './helpers/fake-port.js';

const skip = process.getuid?.() !== 0 ? 'needs root to chown files to mapped IDs' : '';
const UID0 = 100000;
const GID0 = 200000; // below 262143: tar-stream writes IDs in 6 octal digits
const maps = { uid: [{ containerID: 0, hostID: UID0, size: 65536 }], gid: [{ containerID: 0, hostID: GID0, size: 65536 }] };

let dir: string;
let root: string;
let inj: Injector;
beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-archive-userns-'));
  root = path.join(dir, 'rootfs');
  fs.mkdirSync(path.join(root, 'data'), { recursive: true });
  fs.writeFileSync(path.join(root, 'data', 'mine'), 'm');
  if (!skip) {
    fs.chownSync(path.join(root, 'data'), UID0, GID0);
    fs.chownSync(path.join(root, 'data', 'mine'), UID0 + 7, GID0 + 8);
  }
  const recs = [
    record('a'.repeat(64), 'mapped', 'exited', { BaseFS: root, IdMappings: maps }),
    record('b'.repeat(64), 'plain', 'exited', { BaseFS: root }),
  ];
  inj = await openInjector(buildApp({ routes: apiRoutes(fakePort(recs)) }));
});
afterEach(async () => {
  await inj.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function tarOf(entries: Array<{ name: string; uid: number; gid: number }>): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) pack.entry({ name: e.name, mode: 0o644, uid: e.uid, gid: e.gid }, 'x');
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

/** name → "uid:gid" of a tar's entries. */
async function owners(buf: Buffer): Promise<Record<string, string>> {
  const ex = tar.extract();
  const out: Record<string, string> = {};
  const done = (async () => {
    for await (const e of ex) {
      out[e.header.name] = `${e.header.uid}:${e.header.gid}`;
      e.resume();
    }
  })();
  ex.end(buf);
  await done;
  return out;
}

const ownerOnHost = (p: string) => {
  const st = fs.lstatSync(path.join(root, p));
  return `${st.uid}:${st.gid}`;
};

describe.skipIf(!!skip)(`archive of a remapped container${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('PUT: files belong to the remapped root, or to the mapped tar owner with copyUIDGID', async () => {
    const body = await tarOf([{ name: 'a', uid: 5, gid: 6 }]);
    expect((await inj.request({ method: 'PUT', url: '/containers/mapped/archive?path=/data', body })).statusCode).toBe(200);
    expect(ownerOnHost('data/a')).toBe(`${UID0}:${GID0}`);
    const copy = await tarOf([{ name: 'b', uid: 5, gid: 6 }]);
    expect((await inj.request({ method: 'PUT', url: '/containers/mapped/archive?path=/data&copyUIDGID=1', body: copy })).statusCode).toBe(200);
    expect(ownerOnHost('data/b')).toBe(`${UID0 + 5}:${GID0 + 6}`);
    // without a mapping nothing is translated
    expect((await inj.request({ method: 'PUT', url: '/containers/plain/archive?path=/data&copyUIDGID=1', body: await tarOf([{ name: 'c', uid: 5, gid: 6 }]) })).statusCode).toBe(200);
    expect(ownerOnHost('data/c')).toBe('5:6');
  });

  it('PUT with copyUIDGID of an owner outside the mapping fails (dockerd: cannot be mapped to a host ID)', async () => {
    const r = await inj.request({ method: 'PUT', url: '/containers/mapped/archive?path=/data&copyUIDGID=1', body: await tarOf([{ name: 'far', uid: 70000, gid: 0 }]) });
    expect(r.statusCode).toBe(500);
  });

  it('GET and export show the container’s owners; IDs outside the mapping stay as they are', async () => {
    fs.writeFileSync(path.join(root, 'data', 'image-file'), 'i');
    fs.chownSync(path.join(root, 'data', 'image-file'), 0, 0);
    const get = await inj.request({ url: '/containers/mapped/archive?path=/data' });
    expect(get.statusCode).toBe(200);
    expect(await owners(get.body)).toEqual({ 'data/': '0:0', 'data/mine': '7:8', 'data/image-file': '0:0' });
    const exp = await inj.request({ url: '/containers/mapped/export' });
    expect(exp.statusCode).toBe(200);
    expect(await owners(exp.body)).toMatchObject({ 'data/': '0:0', 'data/mine': '7:8' });
    const plain = await inj.request({ url: '/containers/plain/archive?path=/data' });
    expect(await owners(plain.body)).toMatchObject({ 'data/': `${UID0}:${GID0}`, 'data/mine': `${UID0 + 7}:${GID0 + 8}` });
  });
});
