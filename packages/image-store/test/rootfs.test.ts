import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { errorKind } from '@berth/core';
import { loadArchive } from '../src/archive.js';
import { sha256 } from '../src/digest.js';
import { LocalImageStore } from '../src/images.js';
import { mountPoints, RootfsManager } from '../src/rootfs.js';
import { unpackLayer } from '../src/unpack.js';
import { buildTestImage, listTree, makeTar, overlaySkipReason, storePerTest, streamOf, tempDir } from './helpers.js';

// The native addon's writeFiles and removeTrees jobs, counted; `off`: the JS path (as where the addon is not built).
const native = vi.hoisted(() => ({ off: false, loaded: false, jobs: [] as { dirs: unknown[]; files: string[] }[], removes: [] as string[][] }));
vi.mock('@berth/native', async (importOriginal) => {
  const real = await importOriginal<typeof import('@berth/native')>();
  const addon = real.nativeAddon();
  native.loaded = addon !== null;
  const counted: typeof addon = addon && {
    ...addon,
    writeFiles: (dirs, dir, files, mode, flags) => {
      native.jobs.push({ dirs, files: files.map(([name]) => name) });
      return addon.writeFiles(dirs, dir, files, mode, flags);
    },
    removeTrees: (paths) => {
      native.removes.push(paths);
      return addon.removeTrees(paths);
    },
  };
  return { ...real, nativeAddon: () => (native.off ? null : counted) };
});
await import('@berth/native');
// Node's mkdir as core's atomic writer calls it (a named import of node:fs/promises, which a spy on the object would miss)
const mkdirs = vi.hoisted(() => [] as unknown[][]);
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const mkdir = ((...args: Parameters<typeof real.mkdir>) => {
    mkdirs.push(args);
    return real.mkdir(...args);
  }) as typeof real.mkdir;
  return { ...real, mkdir, default: { ...real, mkdir } };
});
const PATHS = [
  { path: 'native addon', off: false, skip: native.loaded ? null : 'native addon not loaded (not built)' },
  { path: 'JS fallback', off: true, skip: null },
];

let img: Awaited<ReturnType<typeof buildTestImage>>;
let base: string;
let store: LocalImageStore;
const CID = 'a'.repeat(64);

beforeAll(async () => {
  img = await buildTestImage();
}, 120_000);
storePerTest(async (s) => {
  ({ base, store } = s);
  await loadArchive(store, createReadStream(img.saveTar));
});
// after hooks run last-registered first: the mounts go before storePerTest closes the store and removes the dir
afterEach(async () => {
  native.off = false;
  // never leak a mount, even when a test failed half-way
  for (const m of mountPoints()) if (m.startsWith(base)) await import('node:child_process').then(({ execFileSync }) => execFileSync('umount', ['-l', m]));
});

async function readTar(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function entriesOf(layer: Buffer): Promise<string[]> {
  const dir = await tempDir('berth-diff-');
  try {
    const t = await import('tar-stream');
    const ex = t.default.extract();
    const names: string[] = [];
    const done = (async () => {
      for await (const e of ex) {
        names.push(e.header.name);
        e.resume();
      }
    })();
    streamOf(layer).pipe(ex as unknown as NodeJS.WritableStream);
    await done;
    return names;
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

const overlaySkip = overlaySkipReason();
describe.skipIf(overlaySkip !== null)(`overlay root filesystems (root)${overlaySkip ? ` (skipped: ${overlaySkip})` : ''}`, () => {
  // With the mount addon (mount(2) with absolute lowerdirs) and with the mount binaries.
  it.each([{ nativeMount: true }, { nativeMount: false }])('mounts the image layers with a per-container upperdir, sizes, diff with whiteouts, unmount and remove without leaks (%o)', async ({ nativeMount }) => {
    const rfs = new RootfsManager(store, path.join(base, 'data'), { driver: 'overlay', nativeMount });
    await rfs.init();
    const meta = await rfs.create(CID, 'berth-test/busybox');
    expect(meta.driver).toBe('overlay');
    const merged = await rfs.mount(CID);
    try {
      expect(rfs.isMounted(CID)).toBe(true);
      expect(await rfs.mount(CID)).toBe(merged); // idempotent, no second mount
      expect([...mountPoints()].filter((m) => m === merged)).toHaveLength(1);
      expect(await fsp.readlink(path.join(merged, 'bin/sh'))).toBe('/bin/busybox');
      await fsp.writeFile(path.join(merged, 'tmp/hello'), 'hello world');
      await fsp.rm(path.join(merged, 'etc/group'));
      const sizes = await rfs.sizes(CID);
      expect(sizes.SizeRw).toBe(11);
      const image = await store.get(meta.imageId);
      expect(sizes.SizeRootFs).toBe(11 + image.size);
      // the image's layer is untouched
      const [layer] = await store.layers.chain(meta.topLayer!);
      expect(await fsp.readFile(path.join(store.layers.diffDir(layer.chainId), 'etc/group'), 'utf8')).toMatch(/^root/);
      const diff = await entriesOf(await readTar(await rfs.diff(CID)));
      expect(diff).toEqual(expect.arrayContaining(['etc/', 'etc/.wh.group', 'tmp/', 'tmp/hello']));
      // the diff applies as a layer: unpacked alone it carries the whiteout
      const d2 = path.join(base, 'apply');
      await fsp.mkdir(d2);
      const r = await unpackLayer(await rfs.diff(CID), d2);
      expect(r.whiteouts).toEqual(['etc/group']);
    } finally {
      await rfs.unmount(CID);
    }
    expect(rfs.isMounted(CID)).toBe(false);
    await rfs.unmount(CID); // idempotent
    expect(await rfs.pinnedLayers()).toEqual([meta.topLayer]);
    await rfs.remove(CID);
    expect(await fsp.readdir(rfs.dir)).toEqual([]);
    expect([...mountPoints()].filter((m) => m.startsWith(base))).toEqual([]);
  });

  it('a pinned layer survives image GC; once the container is removed, it is collected', async () => {
    const rfs = new RootfsManager(store, path.join(base, 'data'), { driver: 'overlay' });
    await rfs.init();
    const meta = await rfs.create(CID, 'berth-test/busybox');
    await store.deleteImage(meta.imageId, await rfs.pinnedLayers());
    expect(await store.layers.has(meta.topLayer!)).toBe(true);
    const merged = await rfs.mount(CID);
    expect(await fsp.readlink(path.join(merged, 'bin/sh'))).toBe('/bin/busybox');
    await rfs.remove(CID);
    expect(await store.gcLayers(await rfs.pinnedLayers())).toEqual([meta.topLayer]);
    expect(await store.blobs.list()).toEqual([]);
  });
});

describe('copy-based root filesystems (no overlayfs)', () => {
  it('materialises the layers with whiteouts and opaque dirs applied, and diffs against the image', async () => {
    // a second layer on top of the test image: deletes /etc/group, makes /home opaque, adds a file
    const t = await makeTar([
      { name: 'etc/.wh.group' },
      { name: 'home/.wh..wh..opq' },
      { name: 'home/new', content: 'n' },
      { name: 'root/.profile', content: 'p' },
    ]);
    const id0 = await store.resolve('berth-test/busybox');
    const base0 = await store.get(id0);
    const l2 = await store.layers.register(streamOf(t), base0.topLayer);
    const cfg = { ...base0.config, rootfs: { type: 'layers' as const, diff_ids: [...base0.config.rootfs.diff_ids, l2.diffId] } };
    const id = await store.createImage(Buffer.from(JSON.stringify(cfg)));
    const rfs = new RootfsManager(store, path.join(base, 'data'), { driver: 'copy' });
    await rfs.init();
    const meta = await rfs.create(CID, id);
    expect(meta.driver).toBe('copy');
    const merged = await rfs.mount(CID);
    const tree = await listTree(merged);
    expect(tree).not.toContain('etc/group');
    expect(tree).toEqual(expect.arrayContaining(['etc/passwd', 'home/new', 'root/.profile', 'bin/busybox']));
    expect((await fsp.lstat(path.join(merged, 'bin/busybox'))).isFile()).toBe(true);
    await fsp.writeFile(path.join(merged, 'tmp/x'), 'xyz');
    await fsp.rm(path.join(merged, 'etc/passwd'));
    const diff = await entriesOf(await readTar(await rfs.diff(CID)));
    expect(diff.sort()).toEqual(['etc/', 'etc/.wh.passwd', 'tmp/', 'tmp/x']);
    const sizes = await rfs.sizes(CID);
    expect(sizes.SizeRootFs).toBeGreaterThan(sizes.SizeRw);
    await rfs.remove(CID);
    expect(await fsp.readdir(rfs.dir)).toEqual([]);
    expect(sha256('x')).toMatch(/^sha256:/);
  });
});

describe.each(PATHS)("a create's directory (issue 18: file-system round trips per create; $path)", ({ off, skip }) => {
  if (skip) console.warn(`rootfs create through the addon skipped: ${skip}`);
  beforeEach(({ skip: skipTest }) => {
    if (skip) skipTest(skip);
    native.off = off;
    native.jobs = [];
    native.removes = [];
  });
  /** The Node fs calls a create makes on its own directory. */
  async function fsCallsOf(d: string, create: () => Promise<unknown>) {
    const spies = { mkdir: vi.spyOn(fsp, 'mkdir'), rm: vi.spyOn(fsp, 'rm'), readFile: vi.spyOn(fsp, 'readFile') };
    mkdirs.length = 0;
    try {
      await create();
      const ours = (calls: unknown[][]) => calls.filter(([p]) => p === d || path.dirname(String(p)) === d);
      return {
        mkdir: ours([...spies.mkdir.mock.calls, ...mkdirs]).map(([p, o]) => [path.relative(d, String(p)), o]),
        rm: ours(spies.rm.mock.calls),
        readFile: ours(spies.readFile.mock.calls),
      };
    } finally {
      for (const s of Object.values(spies)) s.mockRestore();
    }
  }

  it('a fresh create (copy driver): its directories with one mkdir each, no read, no rm; with the addon two jobs, no Node fs call', async () => {
    const rfs = new RootfsManager(store, path.join(base, 'data'), { driver: 'copy' });
    await rfs.init();
    const d = path.join(rfs.dir, CID);
    const id = await store.resolve('berth-test/busybox');
    const calls = await fsCallsOf(d, () => rfs.create(CID, id));
    // before issue 18: a read of the absent meta.json, rm of d (2 lstats), mkdir -p of d/merged
    // (3 mkdirs), the meta write's mkdir -p of d (mkdir + stat)
    expect([calls.readFile, calls.rm]).toEqual([[], []]);
    if (off) {
      expect(calls.mkdir).toEqual([
        ['', { mode: 0o755 }],
        ['merged', { mode: 0o755 }],
      ]);
    } else {
      // the directories, the layers copied in between (cp), then meta.json
      expect(calls.mkdir).toEqual([]);
      expect(native.jobs).toEqual([
        { dirs: [[d, 0o755, 0], [path.join(d, 'merged'), 0o755, 0]], files: [] },
        { dirs: [], files: ['meta.json'] },
      ]);
    }
    expect((await rfs.meta(CID))?.containerId).toBe(CID);
  });

  it.skipIf(overlaySkip !== null)(`a fresh create (overlay driver): with the addon ONE job — the four directories and meta.json (root)${overlaySkip ? ` (skipped: ${overlaySkip})` : ''}`, async () => {
    const rfs = new RootfsManager(store, path.join(base, 'data'), { driver: 'overlay' });
    await rfs.init();
    const d = path.join(rfs.dir, CID);
    const calls = await fsCallsOf(d, () => rfs.create(CID, 'berth-test/busybox'));
    const dirs = [[d, 0o755], [path.join(d, 'merged'), 0o755], [path.join(d, 'upper'), 0o755], [path.join(d, 'work'), 0o700]] as const;
    if (off) expect(calls.mkdir).toEqual(dirs.map(([p, mode]) => [path.relative(d, p), { mode }]));
    else {
      expect(calls).toEqual({ mkdir: [], rm: [], readFile: [] });
      expect(native.jobs).toEqual([{ dirs: dirs.map(([p, mode]) => [p, mode, 0]), files: ['meta.json'] }]);
    }
    expect(await rfs.meta(CID)).toMatchObject({ containerId: CID, driver: 'overlay' });
    expect((await fsp.stat(path.join(d, 'work'))).mode & 0o777).toBe(0o700);
  });

  it('a remove: with the addon ONE removeTrees job of the container dir and no Node fs.rm (before: fs.rm, a round trip per entry)', async () => {
    const rfs = new RootfsManager(store, path.join(base, 'data'), { driver: 'copy' });
    await rfs.init();
    const d = path.join(rfs.dir, CID);
    await rfs.create(CID, await store.resolve('berth-test/busybox'));
    await fsp.writeFile(path.join(d, 'merged', 'written'), 'w');
    const calls = await fsCallsOf(d, () => rfs.remove(CID));
    if (!off) {
      expect(calls.rm).toEqual([]);
      expect(native.removes).toEqual([[d]]);
    }
    expect(await fsp.readdir(rfs.dir)).toEqual([]);
  });

  it("a layer's meta.json is read from disk once per process (a start asks twice), and again after its removal", async () => {
    const rfs = new RootfsManager(store, path.join(base, 'data'), { driver: 'copy' });
    await rfs.init();
    const d = path.join(rfs.dir, CID);
    await rfs.create(CID, await store.resolve('berth-test/busybox'));
    // made here: known without a read
    let calls = await fsCallsOf(d, async () => [await rfs.meta(CID), await rfs.meta(CID)]);
    expect(calls.readFile).toEqual([]);
    // another process (a restarted daemon) reads it once
    const again = new RootfsManager(store, path.join(base, 'data'), { driver: 'copy' });
    calls = await fsCallsOf(d, async () => {
      expect(await again.meta(CID)).toMatchObject({ containerId: CID, driver: 'copy' });
      expect(await again.meta(CID)).toMatchObject({ containerId: CID });
    });
    expect(calls.readFile).toHaveLength(1);
    await again.remove(CID);
    expect(await again.meta(CID)).toBeNull();
  });

  it('what a crashed create left in its directory is cleared', async () => {
    const rfs = new RootfsManager(store, path.join(base, 'data'), { driver: 'copy' });
    await rfs.init();
    const d = path.join(rfs.dir, CID);
    await fsp.mkdir(path.join(d, 'merged', 'half'), { recursive: true });
    const id = await store.resolve('berth-test/busybox');
    await rfs.create(CID, id);
    expect(await fsp.readdir(path.join(d, 'merged'))).not.toContain('half');
    expect((await rfs.meta(CID))?.containerId).toBe(CID);
    // a second create of the same container is the same layer (a start re-creating it), another image is refused
    await fsp.writeFile(path.join(d, 'merged', 'kept'), 'k');
    expect((await rfs.create(CID, id)).imageId).toBe(id);
    expect(await fsp.readdir(path.join(d, 'merged'))).toContain('kept');
    const other = 'sha256:' + 'b'.repeat(64);
    expect(errorKind(await rfs.create(CID, other).catch((e: unknown) => e))).toBe('Conflict');
    expect(await fsp.readdir(path.join(d, 'merged'))).toContain('kept');
    await rfs.remove(CID);
  });
});
