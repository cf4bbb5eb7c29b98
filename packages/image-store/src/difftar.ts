/**
 * Turns a container's changes into an OCI layer tar: the overlay upperdir as it is
 * (character device 0:0 → `.wh.<name>`, opaque directory → `.wh..wh..opq`), or, for the
 * copy-based rootfs, the difference between the container's tree and the image's layers.
 * A remapped container's owners go through an OwnerMap (host → container IDs).
 */
import { createReadStream, promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { withExactIds, type OwnerMap } from '@berth/core';
import tar, { type Header } from 'tar-stream';
import { OVERLAY_OPAQUE_XATTR, SpecialOps } from './special.js';

type Pack = ReturnType<typeof tar.pack>;

function addEntry(pack: Pack, header: Header | Partial<Header> & { name: string }, file?: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (!file) {
      const isFile = !header.type || header.type === 'file' || header.type === 'contiguous-file';
      // a file entry without a buffer waits for a body: give empty ones an empty buffer
      if (isFile) pack.entry(withExactIds({ ...header, type: 'file', size: 0 }), Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
      else pack.entry(withExactIds(header), (err) => (err ? reject(err) : resolve()));
      return;
    }
    const sink = pack.entry(withExactIds(header), (err) => (err ? reject(err) : resolve()));
    const rs = createReadStream(file);
    rs.on('error', (err) => {
      sink.destroy(err);
      reject(err);
    });
    // the consumer went away (a failed commit, a disconnect): the entry fails, the file is closed
    sink.on('error', reject);
    sink.on('close', () => rs.destroy());
    rs.pipe(sink as unknown as NodeJS.WritableStream);
  });
}

/** The owner `st` has in the layer: the container's IDs when `owner` translates them. */
function ownerOf(st: Stats, owner: OwnerMap | undefined): { uid: number; gid: number } {
  return owner ? owner(st.uid, st.gid) : { uid: st.uid, gid: st.gid };
}

function baseHeader(name: string, st: Stats, owner: OwnerMap | undefined): Partial<Header> & { name: string } {
  return { name, mode: st.mode & 0o7777, ...ownerOf(st, owner), mtime: new Date(Math.floor(st.mtimeMs / 1000) * 1000) };
}

/** Adds one filesystem object (not a whiteout) at `rel` to the tar. */
async function addPath(pack: Pack, full: string, rel: string, st: Stats, links: Map<string, string>, owner: OwnerMap | undefined): Promise<void> {
  if (st.isDirectory()) return addEntry(pack, { ...baseHeader(`${rel}/`, st, owner), type: 'directory' });
  if (st.isSymbolicLink()) return addEntry(pack, { ...baseHeader(rel, st, owner), type: 'symlink', linkname: await fsp.readlink(full) });
  if (st.isFile()) {
    if (st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const first = links.get(key);
      if (first) return addEntry(pack, { ...baseHeader(rel, st, owner), type: 'link', linkname: first });
      links.set(key, rel);
    }
    return addEntry(pack, { ...baseHeader(rel, st, owner), type: 'file', size: st.size }, full);
  }
  if (st.isFIFO()) return addEntry(pack, { ...baseHeader(rel, st, owner), type: 'fifo' });
  if (st.isCharacterDevice() || st.isBlockDevice()) {
    return addEntry(pack, {
      ...baseHeader(rel, st, owner),
      type: st.isCharacterDevice() ? 'character-device' : 'block-device',
      devmajor: Math.floor(st.rdev / 256) & 0xfff,
      devminor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00),
    });
  }
  // sockets are not archived (as tar does)
}

function run(pack: Pack, fn: () => Promise<void>): Readable {
  const out = new PassThrough();
  (pack as unknown as Readable).pipe(out);
  // a consumer that stops reading (destroys `out`) ends the walk and closes its files
  out.on('close', () => pack.destroy());
  (pack as unknown as Readable).on('error', (err: Error) => out.destroy(err));
  fn().then(
    () => pack.finalize(),
    (err: unknown) => {
      out.destroy(err as Error);
      pack.destroy(err as Error);
    },
  );
  return out;
}

/** The overlay upperdir as an OCI layer. */
export function upperDirTar(upper: string, owner?: OwnerMap): Readable {
  const pack = tar.pack();
  return run(pack, async () => {
    const special = new SpecialOps();
    const links = new Map<string, string>();
    try {
      const walk = async (dir: string, relDir: string): Promise<void> => {
        const names = (await fsp.readdir(dir)).sort();
        for (const name of names) {
          const full = path.join(dir, name);
          const rel = relDir ? `${relDir}/${name}` : name;
          const st = await fsp.lstat(full);
          if (st.isCharacterDevice() && st.rdev === 0) {
            await addEntry(pack, { name: relDir ? `${relDir}/.wh.${name}` : `.wh.${name}`, mode: 0o644, mtime: new Date(0), size: 0 });
            continue;
          }
          await addPath(pack, full, rel, st, links, owner);
          if (st.isDirectory()) {
            let opaque = false;
            try {
              opaque = (await special.getxattrs(full))[OVERLAY_OPAQUE_XATTR]?.toString() === 'y';
            } catch {
              opaque = false;
            }
            if (opaque) await addEntry(pack, { name: `${rel}/.wh..wh..opq`, mode: 0o644, mtime: new Date(0), size: 0 });
            await walk(full, rel);
          }
        }
      };
      await walk(upper, '');
    } finally {
      await special.close();
    }
  });
}

interface TreeEntry {
  st: Stats;
}

/** Lists a tree: relative path → lstat (stops at directories only by recursion). */
async function scan(root: string): Promise<Map<string, TreeEntry>> {
  const out = new Map<string, TreeEntry>();
  const walk = async (dir: string, relDir: string): Promise<void> => {
    for (const name of (await fsp.readdir(dir)).sort()) {
      const full = path.join(dir, name);
      const rel = relDir ? `${relDir}/${name}` : name;
      const st = await fsp.lstat(full);
      out.set(rel, { st });
      if (st.isDirectory()) await walk(full, rel);
    }
  };
  await walk(root, '');
  return out;
}

/** Whether `a` (the container's tree, owners through `owner`) differs from `b` (the image's). */
function changed(a: Stats, b: Stats, owner: OwnerMap | undefined): boolean {
  const kind = (s: Stats) => (s.isDirectory() ? 'd' : s.isSymbolicLink() ? 'l' : s.isFile() ? 'f' : 'o');
  if (kind(a) !== kind(b)) return true;
  const ao = ownerOf(a, owner);
  if ((a.mode & 0o7777) !== (b.mode & 0o7777) || ao.uid !== b.uid || ao.gid !== b.gid) return true;
  if (a.isDirectory()) return false;
  return a.size !== b.size || Math.floor(a.mtimeMs) !== Math.floor(b.mtimeMs) || a.rdev !== b.rdev;
}

/**
 * For the copy-based rootfs: the differences between `tree` and `base` (the image's
 * composed layers, materialised as a directory) as an OCI layer tar.
 */
export function treeDiffTar(tree: string, base: string, owner?: OwnerMap): Readable {
  const pack = tar.pack();
  return run(pack, async () => {
    const [now, before] = await Promise.all([scan(tree), scan(base)]);
    const links = new Map<string, string>();
    const removedDirs: string[] = [];
    const emitted = new Set<string>();
    /** Parent directories go into the layer too, so that their modes and owners survive. */
    const ensureParents = async (rel: string) => {
      const parts = rel.split('/');
      for (let i = 1; i < parts.length; i++) {
        const dir = parts.slice(0, i).join('/');
        if (emitted.has(dir)) continue;
        emitted.add(dir);
        const st = now.get(dir)?.st;
        if (st) await addPath(pack, path.join(tree, dir), dir, st, links, owner);
      }
    };
    const all = [...new Set([...now.keys(), ...before.keys()])].sort();
    for (const rel of all) {
      if (removedDirs.some((d) => rel.startsWith(`${d}/`))) continue;
      const n = now.get(rel);
      const b = before.get(rel);
      if (!n) {
        const i = rel.lastIndexOf('/');
        const wh = i === -1 ? `.wh.${rel}` : `${rel.slice(0, i)}/.wh.${rel.slice(i + 1)}`;
        await ensureParents(rel);
        await addEntry(pack, { name: wh, mode: 0o644, mtime: new Date(0), size: 0 });
        if (b?.st.isDirectory()) removedDirs.push(rel);
        continue;
      }
      if (!b || changed(n.st, b.st, owner)) {
        await ensureParents(rel);
        if (n.st.isDirectory()) {
          if (emitted.has(rel)) continue;
          emitted.add(rel);
        }
        await addPath(pack, path.join(tree, rel), rel, n.st, links, owner);
      }
    }
  });
}
