/**
 * docker cp through the API on a temp root filesystem: stat header, tar out, tar in, traversal
 * refused; a client that goes away mid-tar leaves no fd of the walk open.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { buildApp, openInjector, apiRoutes, type Injector } from '../src/index.js';
import { fakePort, record } from './helpers/fake-port.js';
import { listTar, makeTar } from './helpers/archive-table.js';

describe('archive (docker cp)', () => {
  let dir: string;
  let root: string;
  let outside: string;
  let inj: Injector;
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-archive-'));
    root = path.join(dir, 'rootfs');
    outside = path.join(dir, 'outside');
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.mkdirSync(path.join(root, 'data', 'sub'), { recursive: true });
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(root, 'etc', 'hostname'), 'box\n');
    fs.writeFileSync(path.join(root, 'data', 'sub', 'a.txt'), 'A');
    fs.symlinkSync('../../../../..' + outside, path.join(root, 'escape'));
    fs.symlinkSync(outside, path.join(root, 'abs'));
    const port = fakePort([record('f'.repeat(64), 'box', 'running', { BaseFS: root })]);
    inj = await openInjector(buildApp({ routes: apiRoutes(port) }));
  });
  afterEach(async () => {
    await inj.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('HEAD gives the path stat header (Go FileMode bits)', async () => {
    const r = await inj.request({ method: 'HEAD', url: '/containers/box/archive?path=/data' });
    expect(r.statusCode).toBe(200);
    const stat = JSON.parse(Buffer.from(String(r.headers['x-docker-container-path-stat']), 'base64').toString());
    expect(stat.name).toBe('data');
    expect(stat.mode >>> 31).toBe(1);
    const miss = await inj.request({ method: 'HEAD', url: '/containers/box/archive?path=/nope' });
    expect(miss.statusCode).toBe(404);
  });

  it('GET tars a file and a directory under their base names', async () => {
    const f = await inj.request({ url: '/containers/box/archive?path=/etc/hostname' });
    expect(f.statusCode).toBe(200);
    expect(await listTar(f.body)).toEqual({ hostname: 'box\n' });
    const d = await inj.request({ url: '/containers/box/archive?path=/data' });
    expect(await listTar(d.body)).toEqual({ 'data/': '', 'data/sub/': '', 'data/sub/a.txt': 'A' });
  });

  it('resolves symlinks inside the root: nothing of the host outside it is read', async () => {
    fs.writeFileSync(path.join(outside, 'secret'), 'host secret');
    const r = await inj.request({ url: '/containers/box/archive?path=/escape/secret' });
    expect(r.statusCode).toBe(404);
    const r2 = await inj.request({ url: '/containers/box/archive?path=/abs/secret' });
    expect(r2.statusCode).toBe(404);
    const r3 = await inj.request({ url: '/containers/box/archive?path=' + encodeURIComponent('../../../../..' + outside + '/secret') });
    expect(r3.statusCode).toBe(404);
  });

  it('PUT extracts into the root and never writes outside it', async () => {
    const ok = await inj.request({ method: 'PUT', url: '/containers/box/archive?path=/data', body: await makeTar([{ name: 'new.txt', body: 'N' }, { name: 'd/', type: 'directory' }, { name: 'd/x', body: 'X' }]), headers: { 'Content-Type': 'application/x-tar' } });
    expect(ok.statusCode).toBe(200);
    expect(fs.readFileSync(path.join(root, 'data', 'new.txt'), 'utf8')).toBe('N');
    expect(fs.readFileSync(path.join(root, 'data', 'd', 'x'), 'utf8')).toBe('X');

    const trav = await inj.request({ method: 'PUT', url: '/containers/box/archive?path=/data', body: await makeTar([{ name: '../../../../../../..' + outside + '/pwned', body: 'bad' }]) });
    expect(trav.statusCode).toBe(400);
    // Through a symlink to a host path: lands inside the root's own /<outside>, not on the host.
    const via = await inj.request({ method: 'PUT', url: '/containers/box/archive?path=/', body: await makeTar([{ name: 'abs/pwned2', body: 'bad' }]) });
    expect(via.statusCode).toBe(200);
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(fs.readFileSync(path.join(root, outside, 'pwned2'), 'utf8')).toBe('bad');
    // A symlink entry then a file through it: the file goes inside the root as well.
    const two = await inj.request({ method: 'PUT', url: '/containers/box/archive?path=/', body: await makeTar([{ name: 'lnk', type: 'symlink', linkname: outside }, { name: 'lnk/pwned3', body: 'bad' }]) });
    expect(two.statusCode).toBe(200);
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  it('PUT to a file or a missing path is refused', async () => {
    const body = await makeTar([{ name: 'x', body: 'x' }]);
    expect((await inj.request({ method: 'PUT', url: '/containers/box/archive?path=/etc/hostname', body })).statusCode).toBe(400);
    expect((await inj.request({ method: 'PUT', url: '/containers/box/archive?path=/missing', body })).statusCode).toBe(404);
    expect((await inj.request({ method: 'PUT', url: '/containers/box/archive', body })).statusCode).toBe(400);
  });

  it('export tars the whole root', async () => {
    const r = await inj.request({ url: '/containers/box/export' });
    expect(r.statusCode).toBe(200);
    const entries = await listTar(r.body);
    expect(entries['etc/hostname']).toBe('box\n');
    expect(entries['abs']).toBe(`-> ${outside}`);
  });

  it('a client that goes away in the middle of a GET or an export leaves no fd of the walk open', async () => {
    fs.writeFileSync(path.join(root, 'data', 'big.bin'), Buffer.alloc(8 * 1024 * 1024, 7));
    const fdsUnder = () =>
      fs.readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir + '/');
        } catch {
          return false;
        }
      }).length;
    const before = fdsUnder();
    for (const url of ['/containers/box/archive?path=/data', '/containers/box/export']) {
      await new Promise<void>((resolve, reject) => {
        const req = http.request({ socketPath: inj.socketPath, path: url }, (res) => {
          res.once('data', () => {
            // read one chunk, then stop reading and hang up while berth is mid-file
            res.pause();
            setTimeout(() => {
              req.destroy();
              resolve();
            }, 50);
          });
        });
        req.on('error', () => undefined);
        req.on('close', () => resolve());
        req.end();
        setTimeout(() => reject(new Error('no response')), 10_000);
      });
      // the server notices the hang-up asynchronously; wait for its fds (bounded)
      for (let i = 0; i < 200 && fdsUnder() > before; i++) await new Promise((r) => setTimeout(r, 10));
      expect(fdsUnder(), url).toBe(before);
    }
  });
});
