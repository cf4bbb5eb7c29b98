/**
 * The archive endpoints' table of hostile and awkward inputs (issue 10): bodies that are not
 * tars, hard links and entries that aim outside the extraction point, symlinks to host paths,
 * loops, and paths inside the container's bind mounts (read, written, read-only, a file bind),
 * each row with the status dockerd gives and what must (not) be on disk afterwards. Shared by
 * archive-input.test.ts (the addon's openat2) and archive-input-fallback.test.ts (BERTH_NATIVE=0)
 * so that both walks answer the same. Every row also proves the host dir outside the container
 * was not touched and that the request left no fd open.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tar from 'tar-stream';
import type { MountPoint } from '@berth/core';
import { buildApp, openInjector, apiRoutes, type Injector } from '../../src/index.js';
import { fakePort, record } from './fake-port.js';

export interface TarEntry {
  name: string;
  body?: string;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  linkname?: string;
}

export async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.type && e.type !== 'file') pack.entry({ name: e.name, type: e.type, linkname: e.linkname, mode: 0o755 });
    else pack.entry({ name: e.name, mode: 0o644 }, e.body ?? '');
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

/** name → content ('-> target' for symlinks, '' for directories) of a tar. */
export async function listTar(buf: Buffer): Promise<Record<string, string>> {
  const ex = tar.extract();
  const out: Record<string, string> = {};
  const done = (async () => {
    for await (const entry of ex) {
      const parts: Buffer[] = [];
      for await (const c of entry) parts.push(Buffer.from(c as Uint8Array));
      out[entry.header.name] = entry.header.type === 'symlink' ? `-> ${entry.header.linkname}` : Buffer.concat(parts).toString();
    }
  })();
  ex.end(buf);
  await done;
  return out;
}

export interface Box {
  dir: string;
  /** The container's root filesystem (host path). */
  root: string;
  /** A host dir the container must never reach: holds `secret`. */
  outside: string;
  /** Sources of the binds: /mnt/rw (rw), /mnt/ro (ro), /etc/app.conf (a file). */
  rw: string;
  ro: string;
  fileBind: string;
  inj: Injector;
  put(urlPath: string, body: Buffer, container?: string): Promise<{ status: number; message: string }>;
  get(urlPath: string, container?: string): Promise<{ status: number; body: Buffer; message: string; stat: Record<string, unknown> | null }>;
  head(urlPath: string, container?: string): Promise<{ status: number; stat: Record<string, unknown> | null }>;
}

interface Row {
  name: string;
  run(b: Box): Promise<void>;
}

const SECRET = 'host secret';

/** The table. A row's `run` makes its requests and checks their answers and the disk. */
export const ROWS: Row[] = [
  // ---- bodies that are not tar archives
  {
    name: 'PUT with a text body (not a tar) → 400',
    async run(b) {
      const r = await b.put('/data', Buffer.from('hello world, this is not a tar archive\n'.repeat(40)));
      expect(r.status).toBe(400);
      expect(r.message).toMatch(/invalid tar archive/);
    },
  },
  {
    name: 'PUT with random binary (not a tar) → 400',
    async run(b) {
      const bytes = Buffer.alloc(3000);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919 + 13) % 251;
      expect((await b.put('/data', bytes)).status).toBe(400);
    },
  },
  {
    name: 'PUT with a truncated tar → 400, nothing of the cut entry kept outside the root',
    async run(b) {
      const whole = await makeTar([{ name: 'big.txt', body: 'x'.repeat(5000) }]);
      expect((await b.put('/data', whole.subarray(0, 1200))).status).toBe(400);
    },
  },
  {
    name: 'PUT with a gzip body (dockerd decompresses; berth does not) → 400, not 500',
    async run(b) {
      const gz = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3, ...Buffer.alloc(600, 1)]);
      expect((await b.put('/data', gz)).status).toBe(400);
    },
  },
  {
    name: 'PUT with an empty body → 200, nothing written (an archive without entries)',
    async run(b) {
      const before = fs.readdirSync(path.join(b.root, 'data')).sort();
      expect((await b.put('/data', Buffer.alloc(0))).status).toBe(200);
      expect(fs.readdirSync(path.join(b.root, 'data')).sort()).toEqual(before);
    },
  },
  // ---- hard links
  {
    name: 'hard link with an absolute link name that is missing → 400 naming no host path',
    async run(b) {
      const r = await b.put('/data', await makeTar([{ name: 'h', type: 'link', linkname: '/no/such/file' }]));
      expect(r.status).toBe(400);
      expect(r.message).toMatch(/invalid hard link/);
      expect(r.message).not.toContain(b.dir);
      expect(r.message).not.toContain('/proc/self');
    },
  },
  {
    name: 'hard link with an absolute link name to a host file → 400; no link to the host file',
    async run(b) {
      const r = await b.put('/data', await makeTar([{ name: 'h', type: 'link', linkname: path.join(b.outside, 'secret') }]));
      expect(r.status).toBe(400);
      expect(fs.existsSync(path.join(b.root, 'data', 'h'))).toBe(false);
      expect(fs.statSync(path.join(b.outside, 'secret')).nlink).toBe(1);
    },
  },
  {
    name: 'hard link with an absolute link name is taken under the extraction point (as dockerd joins it)',
    async run(b) {
      const r = await b.put('/', await makeTar([{ name: 'hn', type: 'link', linkname: '/etc/hostname' }]));
      expect(r.status).toBe(200);
      expect(fs.statSync(path.join(b.root, 'hn')).ino).toBe(fs.statSync(path.join(b.root, 'etc', 'hostname')).ino);
    },
  },
  {
    name: 'hard link with ../ in its link name → 400',
    async run(b) {
      const r = await b.put('/data', await makeTar([{ name: 'h', type: 'link', linkname: '../../outside/secret' }]));
      expect(r.status).toBe(400);
      expect(r.message).toMatch(/path traversal/);
    },
  },
  {
    name: 'hard link to a directory → 400',
    async run(b) {
      expect((await b.put('/', await makeTar([{ name: 'hd', type: 'link', linkname: 'data' }]))).status).toBe(400);
    },
  },
  {
    name: 'hard link across a bind mount → 400 (the target is on another mount)',
    async run(b) {
      const r = await b.put('/', await makeTar([{ name: 'hx', type: 'link', linkname: 'mnt/rw/b.txt' }]));
      expect(r.status).toBe(400);
      expect(r.message).not.toContain(b.dir);
    },
  },
  {
    name: 'hard link to an entry of the same archive → 200, one inode',
    async run(b) {
      const r = await b.put('/data', await makeTar([{ name: 'one', body: '1' }, { name: 'two', type: 'link', linkname: 'one' }]));
      expect(r.status).toBe(200);
      expect(fs.statSync(path.join(b.root, 'data', 'two')).ino).toBe(fs.statSync(path.join(b.root, 'data', 'one')).ino);
    },
  },
  // ---- entries aiming outside the extraction point
  {
    name: 'entry ../../x → 400',
    async run(b) {
      const r = await b.put('/data', await makeTar([{ name: '../../x', body: 'bad' }]));
      expect(r.status).toBe(400);
      expect(r.message).toMatch(/path traversal/);
      expect(fs.existsSync(path.join(b.root, 'x'))).toBe(false);
    },
  },
  {
    name: 'entry a/../../x → 400',
    async run(b) {
      expect((await b.put('/data', await makeTar([{ name: 'a/../../x', body: 'bad' }]))).status).toBe(400);
    },
  },
  {
    name: 'entry with an absolute name lands under the extraction point',
    async run(b) {
      expect((await b.put('/data', await makeTar([{ name: '/abs/x', body: 'A' }]))).status).toBe(200);
      expect(fs.readFileSync(path.join(b.root, 'data', 'abs', 'x'), 'utf8')).toBe('A');
    },
  },
  {
    name: 'a symlink entry to a host dir, then a file through it → the file stays inside the root',
    async run(b) {
      const r = await b.put('/', await makeTar([{ name: 'lnk', type: 'symlink', linkname: b.outside }, { name: 'lnk/pwned', body: 'bad' }]));
      expect(r.status).toBe(200);
      expect(fs.readFileSync(path.join(b.root, b.outside, 'pwned'), 'utf8')).toBe('bad');
    },
  },
  {
    name: 'PUT to a relative symlink climbing out of the root → written inside the root',
    async run(b) {
      fs.mkdirSync(path.join(b.root, b.outside), { recursive: true });
      expect((await b.put('/escape', await makeTar([{ name: 'pwned', body: 'bad' }]))).status).toBe(200);
      expect(fs.existsSync(path.join(b.root, b.outside, 'pwned'))).toBe(true);
    },
  },
  {
    name: 'a symlink in the root replaced by a file entry: the link is replaced, its target untouched',
    async run(b) {
      expect((await b.put('/', await makeTar([{ name: 'abs', body: 'plain' }]))).status).toBe(200);
      expect(fs.lstatSync(path.join(b.root, 'abs')).isFile()).toBe(true);
      expect(fs.readFileSync(path.join(b.outside, 'secret'), 'utf8')).toBe(SECRET);
    },
  },
  {
    name: 'noOverwriteDirNonDir: a file over a directory → 400',
    async run(b) {
      const r = await b.put('/?noOverwriteDirNonDir=1', await makeTar([{ name: 'data', body: 'file' }]));
      expect(r.status).toBe(400);
      expect(r.message).toMatch(/cannot overwrite directory/);
      expect(fs.statSync(path.join(b.root, 'data')).isDirectory()).toBe(true);
    },
  },
  // ---- reads through symlinks and odd paths
  {
    name: 'GET through an absolute symlink to a host dir → 404, the host file is not read',
    async run(b) {
      const r = await b.get('/abs/secret');
      expect(r.status).toBe(404);
      expect(r.body.includes(SECRET)).toBe(false);
    },
  },
  {
    name: 'GET of a path with ../ climbing out → clamped at the root (404 here)',
    async run(b) {
      expect((await b.get('/../../../../..' + b.outside + '/secret')).status).toBe(404);
    },
  },
  {
    name: 'a symlink loop → 400 too many levels of symbolic links',
    async run(b) {
      fs.symlinkSync('loop2', path.join(b.root, 'loop1'));
      fs.symlinkSync('loop1', path.join(b.root, 'loop2'));
      const r = await b.get('/loop1/x');
      expect(r.status).toBe(400);
      expect(r.message).toMatch(/too many levels of symbolic links/);
    },
  },
  {
    name: 'GET of a path through a file → 404',
    async run(b) {
      expect((await b.get('/etc/hostname/x')).status).toBe(404);
    },
  },
  {
    name: 'HEAD of a symlink describes the link; linkTarget is its container path',
    async run(b) {
      fs.symlinkSync('data/sub', path.join(b.root, 'rel'));
      const r = await b.head('/rel');
      expect(r.status).toBe(200);
      expect(r.stat).toMatchObject({ name: 'rel', linkTarget: '/data/sub' });
      expect(((r.stat!.mode as number) & 0x08000000) !== 0).toBe(true);
    },
  },
  // ---- bind mounts, as the container sees them
  {
    name: 'HEAD and GET of a file in a bind mount read the bind source, not the mount point under it',
    async run(b) {
      const h = await b.head('/mnt/rw/b.txt');
      expect(h.status).toBe(200);
      expect(h.stat).toMatchObject({ name: 'b.txt', size: 4 });
      const g = await b.get('/mnt/rw/b.txt');
      expect(await listTar(g.body)).toEqual({ 'b.txt': 'bind' });
      expect((await b.get('/mnt/rw/decoy')).status).toBe(404);
    },
  },
  {
    name: 'GET of a directory holding bind mounts tars the mounts’ contents',
    async run(b) {
      const g = await b.get('/mnt');
      expect(g.status).toBe(200);
      const entries = await listTar(g.body);
      expect(entries['mnt/rw/b.txt']).toBe('bind');
      expect(entries['mnt/ro/r.txt']).toBe('read-only');
      expect(entries['mnt/rw/decoy']).toBeUndefined();
    },
  },
  {
    name: 'GET of a file bind mount returns the bound file',
    async run(b) {
      const g = await b.get('/etc/app.conf');
      expect(g.status).toBe(200);
      expect(await listTar(g.body)).toEqual({ 'app.conf': 'conf=1\n' });
    },
  },
  {
    name: 'a bind whose destination the image reaches through a symlink is seen where the runtime mounts it',
    async run(b) {
      expect(await listTar((await b.get('/real/data/b.txt')).body)).toEqual({ 'b.txt': 'bind' });
      expect(await listTar((await b.get('/alias/data/b.txt')).body)).toEqual({ 'b.txt': 'bind' });
      expect((await b.put('/real/data', await makeTar([{ name: 'via-real.txt', body: 'R' }]))).status).toBe(200);
      expect(fs.readFileSync(path.join(b.rw, 'via-real.txt'), 'utf8')).toBe('R');
    },
  },
  {
    name: 'GET below a file bind → 404',
    async run(b) {
      expect((await b.get('/etc/app.conf/x')).status).toBe(404);
    },
  },
  {
    name: 'an entry 60 directories deep without directory entries → 200, its parents made',
    async run(b) {
      const deep = Array.from({ length: 60 }, (_, i) => `d${i}`).join('/');
      expect((await b.put('/data', await makeTar([{ name: `${deep}/leaf`, body: 'L' }]))).status).toBe(200);
      expect(fs.readFileSync(path.join(b.root, 'data', deep, 'leaf'), 'utf8')).toBe('L');
    },
  },
  {
    name: 'PUT into a bind mount writes the bind source',
    async run(b) {
      expect((await b.put('/mnt/rw', await makeTar([{ name: 'new.txt', body: 'N' }]))).status).toBe(200);
      expect(fs.readFileSync(path.join(b.rw, 'new.txt'), 'utf8')).toBe('N');
      expect(fs.existsSync(path.join(b.root, 'mnt', 'rw', 'new.txt'))).toBe(false);
    },
  },
  {
    name: 'PUT into a read-only bind → 400 mounted volume is marked read-only, nothing written',
    async run(b) {
      const r = await b.put('/mnt/ro', await makeTar([{ name: 'x', body: 'x' }]));
      expect(r.status).toBe(400);
      expect(r.message).toBe('mounted volume is marked read-only');
      expect(fs.readdirSync(b.ro)).toEqual(['r.txt']);
    },
  },
  {
    name: 'PUT at / with an entry inside a read-only bind → 400, nothing written there',
    async run(b) {
      const r = await b.put('/', await makeTar([{ name: 'mnt/ro/x', body: 'x' }]));
      expect(r.status).toBe(400);
      expect(fs.readdirSync(b.ro)).toEqual(['r.txt']);
    },
  },
  {
    name: 'a file entry over a bind mount’s mount point → 400; a directory entry there leaves it',
    async run(b) {
      expect((await b.put('/mnt', await makeTar([{ name: 'rw', body: 'file' }]))).status).toBe(400);
      expect((await b.put('/mnt', await makeTar([{ name: 'rw/', type: 'directory' }, { name: 'rw/d.txt', body: 'D' }]))).status).toBe(200);
      expect(fs.readFileSync(path.join(b.rw, 'd.txt'), 'utf8')).toBe('D');
    },
  },
  {
    name: 'a symlink inside a bind to an absolute path resolves in the container root, not on the host',
    async run(b) {
      fs.symlinkSync('/etc', path.join(b.rw, 'up'));
      const g = await b.get('/mnt/rw/up/hostname');
      expect(await listTar(g.body)).toEqual({ hostname: 'box\n' });
      fs.symlinkSync(b.outside, path.join(b.rw, 'host'));
      expect((await b.get('/mnt/rw/host/secret')).status).toBe(404);
    },
  },
  {
    name: 'read-only rootfs: PUT on the rootfs → 403, PUT into a writable bind → 200',
    async run(b) {
      const r = await b.put('/data', await makeTar([{ name: 'x', body: 'x' }]), 'rofs');
      expect(r.status).toBe(403);
      expect(r.message).toBe('container rootfs is marked read-only');
      expect(fs.existsSync(path.join(b.root, 'data', 'x'))).toBe(false);
      expect((await b.put('/mnt/rw', await makeTar([{ name: 'ok.txt', body: 'ok' }]), 'rofs')).status).toBe(200);
      expect(fs.readFileSync(path.join(b.rw, 'ok.txt'), 'utf8')).toBe('ok');
    },
  },
];

/** Our fds on files and dirs under `dir` (the HTTP sockets of the injector come and go on their own). */
function openFdsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target === dir || target.startsWith(dir + '/')) out.push(target);
    } catch {
      // closed meanwhile (the readdir's own fd)
    }
  }
  return out;
}

function bind(source: string, destination: string, rw: boolean): MountPoint {
  return { Type: 'bind', Source: source, Destination: destination, Mode: rw ? '' : 'ro', RW: rw, Propagation: 'rprivate' };
}

/** Runs ROWS against a fresh temp container tree per row. */
export function archiveTable(title: string): void {
  describe(title, () => {
    let b: Box;
    let fdsBefore: string[] = [];
    beforeEach(async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-archive-table-'));
      const root = path.join(dir, 'rootfs');
      const outside = path.join(dir, 'outside');
      const rw = path.join(dir, 'bind-rw');
      const ro = path.join(dir, 'bind-ro');
      const fileBind = path.join(dir, 'app.conf');
      for (const d of [path.join(root, 'etc'), path.join(root, 'data', 'sub'), path.join(root, 'mnt', 'rw'), path.join(root, 'mnt', 'ro'), outside, rw, ro]) fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(root, 'etc', 'hostname'), 'box\n');
      fs.writeFileSync(path.join(root, 'etc', 'app.conf'), 'under the bind\n');
      fs.writeFileSync(path.join(root, 'data', 'sub', 'a.txt'), 'A');
      fs.writeFileSync(path.join(root, 'mnt', 'rw', 'decoy'), 'under the bind');
      fs.writeFileSync(path.join(outside, 'secret'), SECRET);
      fs.writeFileSync(path.join(rw, 'b.txt'), 'bind');
      fs.writeFileSync(path.join(ro, 'r.txt'), 'read-only');
      fs.writeFileSync(fileBind, 'conf=1\n');
      fs.symlinkSync('../../../../..' + outside, path.join(root, 'escape'));
      fs.symlinkSync(outside, path.join(root, 'abs'));
      // the image's /alias is a symlink to /real: a bind at /alias/data is mounted on /real/data
      fs.mkdirSync(path.join(root, 'real', 'data'), { recursive: true });
      fs.symlinkSync('real', path.join(root, 'alias'));
      const Mounts = [bind(rw, '/mnt/rw', true), bind(ro, '/mnt/ro', false), bind(fileBind, '/etc/app.conf', true), bind(rw, '/alias/data', true)];
      const port = fakePort([
        record('f'.repeat(64), 'box', 'running', { BaseFS: root, Mounts }),
        record('e'.repeat(64), 'rofs', 'running', { BaseFS: root, Mounts, HostConfig: { NetworkMode: 'none', ReadonlyRootfs: true } }),
      ]);
      const inj = await openInjector(buildApp({ routes: apiRoutes(port) }));
      const url = (container: string, p: string) => `/containers/${container}/archive?path=${encodeURIComponent(p)}`;
      const message = (text: string) => {
        try {
          return String((JSON.parse(text) as { message?: unknown }).message ?? '');
        } catch {
          return '';
        }
      };
      const stat = (h: string | string[] | undefined) => (typeof h === 'string' ? (JSON.parse(Buffer.from(h, 'base64').toString()) as Record<string, unknown>) : null);
      b = {
        dir,
        root,
        outside,
        rw,
        ro,
        fileBind,
        inj,
        async put(p, body, container = 'box') {
          const [pathPart, query] = p.split('?');
          const r = await inj.request({ method: 'PUT', url: url(container, pathPart!) + (query ? `&${query}` : ''), body, headers: { 'Content-Type': 'application/x-tar' } });
          return { status: r.statusCode, message: message(r.text) };
        },
        async get(p, container = 'box') {
          const r = await inj.request({ url: url(container, p) });
          return { status: r.statusCode, body: r.body, message: message(r.text), stat: stat(r.headers['x-docker-container-path-stat']) };
        },
        async head(p, container = 'box') {
          const r = await inj.request({ method: 'HEAD', url: url(container, p) });
          return { status: r.statusCode, stat: stat(r.headers['x-docker-container-path-stat']) };
        },
      };
      fdsBefore = openFdsUnder(dir);
    });
    afterEach(async () => {
      // nothing reached the host dir, and every fd of the walks was closed
      expect(fs.readdirSync(b.outside)).toEqual(['secret']);
      expect(fs.readFileSync(path.join(b.outside, 'secret'), 'utf8')).toBe(SECRET);
      expect(openFdsUnder(b.dir)).toEqual(fdsBefore);
      await b.inj.close();
      fs.rmSync(b.dir, { recursive: true, force: true });
    });

    for (const row of ROWS) it(row.name, () => row.run(b));
  });
}
