/**
 * docker cp / export of a container that does not run: the routes lease the root filesystem
 * mount for the request and give it back on success, failure and client disconnect; the image
 * store's MountRefs counts holders so that a start or a second request racing with a cp never
 * unmounts a mount someone else still uses.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import tar from 'tar-stream';
import { NotFoundError, SystemError } from '@berth/core';
import { MountRefs, type MountOps } from '@berth/image-store';
import { buildApp, openInjector, apiRoutes, type Injector } from '../src/index.js';
import { fakePort, record } from './helpers/fake-port.js';

/** Mount operations over a flag per container; records real mounts/unmounts; fails on overlapping calls. */
function fakeOps(opts: { delayMs?: number; failMount?: () => boolean; failUnmount?: () => boolean } = {}) {
  const mounted = new Set<string>();
  const log: string[] = [];
  let busy = 0;
  const step = async () => {
    if (busy++ > 0) throw new Error('mount operations overlapped');
    try {
      await new Promise((r) => setTimeout(r, opts.delayMs ?? 1));
    } finally {
      busy--;
    }
  };
  const ops: MountOps = {
    isMounted: (id) => mounted.has(id),
    async mount(id) {
      await step();
      if (mounted.has(id)) return `/m/${id}`;
      if (opts.failMount?.()) throw new SystemError(`mounting the root filesystem of ${id} failed: boom`);
      mounted.add(id);
      log.push(`mount ${id}`);
      return `/m/${id}`;
    },
    async unmount(id) {
      await step();
      if (!mounted.has(id)) return;
      if (opts.failUnmount?.()) throw new SystemError(`unmounting the root filesystem of ${id} failed: busy`);
      mounted.delete(id);
      log.push(`unmount ${id}`);
    },
  };
  return { ops, mounted, log };
}

describe('MountRefs (image store): holders of a container mount', () => {
  it('a lease mounts an unmounted rootfs and its release unmounts it; release is idempotent', async () => {
    const f = fakeOps();
    const refs = new MountRefs(f.ops);
    const lease = await refs.acquire('c1');
    expect(lease.path).toBe('/m/c1');
    expect(f.mounted.has('c1')).toBe(true);
    await lease.release();
    await lease.release();
    expect(f.mounted.has('c1')).toBe(false);
    expect(f.log).toEqual(['mount c1', 'unmount c1']);
    expect(refs.holders('c1')).toEqual({ engine: false, leases: 0 });
  });

  it('concurrent leases mount once and the last release unmounts', async () => {
    const f = fakeOps({ delayMs: 5 });
    const refs = new MountRefs(f.ops);
    const [a, b, c] = await Promise.all([refs.acquire('c1'), refs.acquire('c1'), refs.acquire('c1')]);
    expect(f.log).toEqual(['mount c1']);
    expect(refs.holders('c1').leases).toBe(3);
    await Promise.all([a.release(), b.release()]);
    expect(f.mounted.has('c1')).toBe(true);
    await c.release();
    expect(f.log).toEqual(['mount c1', 'unmount c1']);
  });

  it('a start during a cp keeps the mount after the cp ends; the exit then unmounts', async () => {
    const f = fakeOps();
    const refs = new MountRefs(f.ops);
    const cp = await refs.acquire('c1');
    await refs.engineMount('c1'); // start: beforeMount
    await cp.release();
    expect(f.mounted.has('c1')).toBe(true);
    await refs.engineUnmount('c1'); // exit
    expect(f.mounted.has('c1')).toBe(false);
    expect(f.log).toEqual(['mount c1', 'unmount c1']);
  });

  it('an exit during a cp keeps the mount until the cp ends', async () => {
    const f = fakeOps();
    const refs = new MountRefs(f.ops);
    await refs.engineMount('c1');
    const cp = await refs.acquire('c1');
    await refs.engineUnmount('c1');
    expect(f.mounted.has('c1')).toBe(true);
    await cp.release();
    expect(f.mounted.has('c1')).toBe(false);
  });

  it('start and cp racing from the same instant: whichever order, the mount lives while either holds it', async () => {
    const f = fakeOps({ delayMs: 3 });
    const refs = new MountRefs(f.ops);
    const [cp] = await Promise.all([refs.acquire('c1'), refs.engineMount('c1')]);
    await cp.release();
    expect(f.mounted.has('c1')).toBe(true);
    const cp2 = refs.acquire('c1');
    const exit = refs.engineUnmount('c1');
    const lease2 = await cp2;
    await exit;
    expect(f.mounted.has('c1')).toBe(true);
    await lease2.release();
    expect(f.mounted.has('c1')).toBe(false);
    expect(f.log).toEqual(['mount c1', 'unmount c1']);
  });

  it('a mount found with no holder on record (running container restored after a daemon restart) stays after the cp', async () => {
    const f = fakeOps();
    f.mounted.add('c1');
    const refs = new MountRefs(f.ops);
    const cp = await refs.acquire('c1');
    await cp.release();
    expect(f.mounted.has('c1')).toBe(true);
    expect(refs.holders('c1')).toEqual({ engine: true, leases: 0 });
    await refs.engineUnmount('c1');
    expect(f.mounted.has('c1')).toBe(false);
  });

  it('a failed mount counts no lease; the next request mounts again', async () => {
    let fail = true;
    const f = fakeOps({ failMount: () => fail });
    const refs = new MountRefs(f.ops);
    await expect(refs.acquire('c1')).rejects.toThrow(/boom/);
    expect(refs.holders('c1')).toEqual({ engine: false, leases: 0 });
    fail = false;
    const l = await refs.acquire('c1');
    await l.release();
    expect(f.log).toEqual(['mount c1', 'unmount c1']);
  });

  it('a failed unmount at release surfaces and leaves no lease counted', async () => {
    let fail = true;
    const f = fakeOps({ failUnmount: () => fail });
    const refs = new MountRefs(f.ops);
    const l = await refs.acquire('c1');
    await expect(l.release()).rejects.toThrow(/busy/);
    expect(refs.holders('c1').leases).toBe(0);
    fail = false;
    await refs.engineUnmount('c1');
    expect(f.mounted.has('c1')).toBe(false);
  });

  it('forget (container removed) drops every hold and unmounts', async () => {
    const f = fakeOps();
    const refs = new MountRefs(f.ops);
    await refs.engineMount('c1');
    const l = await refs.acquire('c1');
    await refs.forget('c1');
    expect(f.mounted.has('c1')).toBe(false);
    await l.release();
    expect(f.log).toEqual(['mount c1', 'unmount c1']);
  });

  it('containers do not share holds', async () => {
    const f = fakeOps();
    const refs = new MountRefs(f.ops);
    const a = await refs.acquire('a');
    await refs.engineMount('b');
    await a.release();
    expect([...f.mounted]).toEqual(['b']);
  });
});

async function makeTar(entries: Array<{ name: string; body: string }>): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) pack.entry({ name: e.name, mode: 0o644 }, e.body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('archive and export routes on a container that does not run', () => {
  const ID = 'e'.repeat(64);
  let dir: string;
  let root: string;
  let inj: Injector;
  let f: ReturnType<typeof fakeOps>;
  let refs: MountRefs;
  let acquired: number;
  let mountFails: boolean;

  /** The port leases a mount (over MountRefs and fake ops); the "mounted" rootfs is `root`. */
  async function open(opts: { withMount?: boolean; baseFS?: string } = {}) {
    const rec = record(ID, 'stopped', 'exited', opts.baseFS ? { BaseFS: opts.baseFS } : {});
    const port = fakePort([rec]);
    if (opts.withMount !== false) {
      port.containers.mountRootfs = async (idOrName) => {
        const c = await port.containers.inspect(idOrName);
        if (mountFails) throw new SystemError(`mounting the root filesystem of ${c.ID} failed: no overlay`);
        const lease = await refs.acquire(c.ID);
        acquired++;
        return { path: root, release: () => lease.release() };
      };
    }
    inj = await openInjector(buildApp({ routes: apiRoutes(port) }));
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-archive-mount-'));
    root = path.join(dir, 'rootfs');
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc', 'hostname'), 'box\n');
    f = fakeOps();
    refs = new MountRefs(f.ops);
    acquired = 0;
    mountFails = false;
  });
  afterEach(async () => {
    await inj?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('HEAD, GET, PUT and export each mount for the request and unmount after it', async () => {
    await open();
    expect((await inj.request({ method: 'HEAD', url: `/containers/stopped/archive?path=/etc/hostname` })).statusCode).toBe(200);
    const get = await inj.request({ url: `/containers/stopped/archive?path=/etc/hostname` });
    expect(get.statusCode).toBe(200);
    expect(get.body.length).toBeGreaterThan(512);
    const put = await inj.request({ method: 'PUT', url: `/containers/stopped/archive?path=/etc`, body: await makeTar([{ name: 'new.txt', body: 'N' }]) });
    expect(put.statusCode).toBe(200);
    expect(fs.readFileSync(path.join(root, 'etc', 'new.txt'), 'utf8')).toBe('N');
    const exp = await inj.request({ url: `/containers/stopped/export` });
    expect(exp.statusCode).toBe(200);
    expect(acquired).toBe(4);
    expect(f.log).toEqual(Array(4).fill([`mount ${ID}`, `unmount ${ID}`]).flat());
    expect(refs.holders(ID)).toEqual({ engine: false, leases: 0 });
  });

  it('a request that fails after the mount (missing path, bad tar, file target) still unmounts', async () => {
    await open();
    expect((await inj.request({ method: 'HEAD', url: `/containers/stopped/archive?path=/nope` })).statusCode).toBe(404);
    expect((await inj.request({ url: `/containers/stopped/archive?path=/nope` })).statusCode).toBe(404);
    expect((await inj.request({ method: 'PUT', url: `/containers/stopped/archive?path=/missing`, body: await makeTar([{ name: 'x', body: 'x' }]) })).statusCode).toBe(404);
    expect((await inj.request({ method: 'PUT', url: `/containers/stopped/archive?path=/etc/hostname`, body: await makeTar([{ name: 'x', body: 'x' }]) })).statusCode).toBe(400);
    expect(acquired).toBe(4);
    expect(f.mounted.size).toBe(0);
    expect(refs.holders(ID).leases).toBe(0);
  });

  it('refusals before the mount (empty path, read-only rootfs, unknown container) mount nothing', async () => {
    await open();
    expect((await inj.request({ url: `/containers/stopped/archive` })).statusCode).toBe(400);
    expect((await inj.request({ method: 'PUT', url: `/containers/stopped/archive`, body: Buffer.alloc(0) })).statusCode).toBe(400);
    expect((await inj.request({ url: `/containers/nosuch/export` })).statusCode).toBe(404);
    expect(acquired).toBe(0);
    expect(f.log).toEqual([]);
  });

  it('a failing mount is the answer (500 with its message) and leaves nothing held', async () => {
    await open();
    mountFails = true;
    const r = await inj.request({ url: `/containers/stopped/export` });
    expect(r.statusCode).toBe(500);
    expect(r.json().message).toMatch(/no overlay/);
    expect(refs.holders(ID).leases).toBe(0);
  });

  it('a client that disconnects mid-export gets the mount released', async () => {
    // enough data that the export is still streaming when the client goes
    const big = Buffer.alloc(4 * 1024 * 1024, 7);
    for (let i = 0; i < 8; i++) fs.writeFileSync(path.join(root, `big${i}`), big);
    await open();
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ socketPath: inj.socketPath, path: `/containers/stopped/export`, method: 'GET' }, (res) => {
        expect(res.statusCode).toBe(200);
        res.once('data', () => {
          expect(refs.holders(ID).leases).toBe(1);
          req.destroy();
          resolve();
        });
      });
      req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)));
      req.end();
    });
    await until(() => refs.holders(ID).leases === 0 && f.mounted.size === 0);
    expect(f.log).toEqual([`mount ${ID}`, `unmount ${ID}`]);
  });

  it('concurrent cps of one container share one mount', async () => {
    await open();
    const rs = await Promise.all(Array.from({ length: 5 }, () => inj.request({ url: `/containers/stopped/archive?path=/etc` })));
    expect(rs.map((r) => r.statusCode)).toEqual([200, 200, 200, 200, 200]);
    expect(f.mounted.size).toBe(0);
    expect(f.log.filter((l) => l.startsWith('unmount')).length).toBe(f.log.filter((l) => l.startsWith('mount')).length);
    expect(refs.holders(ID).leases).toBe(0);
  });

  it('a plain root filesystem (BaseFS, no mount support) is used as it is; none at all is a 409', async () => {
    await open({ withMount: false, baseFS: root });
    expect((await inj.request({ url: `/containers/stopped/archive?path=/etc/hostname` })).statusCode).toBe(200);
    await inj.close();
    await open({ withMount: false });
    const r = await inj.request({ url: `/containers/stopped/export` });
    expect(r.statusCode).toBe(409);
    expect(r.json().message).toMatch(/has no root filesystem/);
  });

  it('the image store refuses a lease on a container it has no rootfs for (NotFound stays a typed error)', async () => {
    const refs2 = new MountRefs({ isMounted: () => false, mount: async (id) => Promise.reject(new NotFoundError(`no root filesystem prepared for container ${id}`)), unmount: async () => undefined });
    await expect(refs2.acquire('x')).rejects.toMatchObject({ kind: 'NotFound' });
    expect(refs2.holders('x').leases).toBe(0);
  });
});
