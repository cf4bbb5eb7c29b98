import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import tar, { type Header } from 'tar-stream';
import { afterEach, beforeEach, expect } from 'vitest';
import { LocalImageStore } from '../src/images.js';
import { overlaySupported } from '../src/rootfs.js';

export interface TarEntry {
  name: string;
  type?: Header['type'];
  content?: string | Buffer;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

export async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const e of entries) {
    const content = e.content === undefined ? undefined : Buffer.from(e.content);
    const header = {
      name: e.name,
      type: e.type ?? 'file',
      mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: new Date(1_000_000_000_000),
      linkname: e.linkname,
      devmajor: e.devmajor,
      devminor: e.devminor,
      size: content?.length ?? 0,
      ...(e.pax ? { pax: e.pax } : {}),
    } as Header;
    await new Promise<void>((resolve, reject) => pack.entry(header, content ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export const gzip = (b: Buffer): Buffer => zlib.gzipSync(b);

export const streamOf = (b: Buffer): Readable => Readable.from([b]);

export async function tempDir(prefix = 'berth-img-'): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

/**
 * A fresh data root for each test of the calling file; what `track` is given (stores,
 * services) is closed after the test, then the dir is removed.
 */
export function dataRootPerTest(): { dataRoot: () => string; track: <T extends { close(): Promise<void> }>(x: T) => T } {
  let base = '';
  const opened: Array<{ close(): Promise<void> }> = [];
  beforeEach(async () => {
    base = await tempDir();
  });
  afterEach(async () => {
    for (const x of opened.splice(0)) await x.close();
    await fsp.rm(base, { recursive: true, force: true });
  });
  return {
    dataRoot: () => path.join(base, 'data'),
    track: (x) => {
      opened.push(x);
      return x;
    },
  };
}

/**
 * A fresh image store for each test of the calling file: a LocalImageStore on `<base>/data` of a
 * fresh temp dir, opened before the test (`set` gets both, then may prepare more in `base`) and
 * closed after it, the dir removed.
 */
export function storePerTest(set: (s: { base: string; store: LocalImageStore }) => unknown): void {
  const per = dataRootPerTest();
  beforeEach(async () => {
    const store = per.track(new LocalImageStore(per.dataRoot()));
    await store.init();
    await set({ base: path.dirname(per.dataRoot()), store });
  });
}

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Why overlay root filesystems cannot be tested here (null: they can). */
export function overlaySkipReason(): string | null {
  if (!isRoot) return 'overlay mounts need root';
  return overlaySupported() ? null : 'the kernel has no overlayfs (/proc/filesystems)';
}

/** Every path under `dir`, relative, sorted. */
export async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      out.push(path.relative(dir, p));
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}

/**
 * berth-test/busybox built by scripts/build-test-image.sh, once per script version and busybox
 * binary: the result is kept in a cache dir under the OS temp dir (renamed into place when
 * complete, so parallel test files never see half of it). Tests only read it.
 */
export async function buildTestImage(): Promise<{ dir: string; saveTar: string; ociTar: string; ociDir: string; id: `sha256:${string}`; diffId: `sha256:${string}` }> {
  const { execFile } = await import('node:child_process');
  const { createHash } = await import('node:crypto');
  const script = path.resolve(import.meta.dirname, '../../../scripts/build-test-image.sh');
  const bb = await fsp.stat('/bin/busybox').catch(() => null);
  const key = createHash('sha256').update(await fsp.readFile(script)).update(`${bb?.size}:${bb?.mtimeMs}`).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), `berth-testimg-${key}`);
  const info = (d: string, id: string, diffId: string) => ({
    dir: d,
    saveTar: path.join(d, 'busybox.tar'),
    ociTar: path.join(d, 'busybox-oci.tar'),
    ociDir: path.join(d, 'busybox-oci'),
    id: id as `sha256:${string}`,
    diffId: diffId as `sha256:${string}`,
  });
  try {
    const cached = JSON.parse(await fsp.readFile(path.join(dir, 'ids.json'), 'utf8')) as { id: string; diffId: string };
    return info(dir, cached.id, cached.diffId);
  } catch {
    // not built yet
  }
  const tmp = await tempDir('berth-testimg-build-');
  const out = await new Promise<string>((resolve, reject) =>
    execFile('bash', [script, tmp], { encoding: 'utf8' }, (err, stdout, stderr) => (err ? reject(new Error(`build-test-image.sh failed: ${stderr}`)) : resolve(stdout))),
  );
  const m = /image ID (sha256:[0-9a-f]{64}) \(layer DiffID (sha256:[0-9a-f]{64})\)/.exec(out);
  if (!m) throw new Error(`unexpected build-test-image output: ${out}`);
  await fsp.writeFile(path.join(tmp, 'ids.json'), JSON.stringify({ id: m[1], diffId: m[2] }));
  try {
    await fsp.rename(tmp, dir);
  } catch {
    await fsp.rm(tmp, { recursive: true, force: true }); // another test file was quicker
  }
  return info(dir, m[1], m[2]);
}

/** The error a promise rejects with (the test fails when it resolves). */
export async function caught(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e, 'expected a rejection').toBeInstanceOf(Error);
  return e as Error;
}
