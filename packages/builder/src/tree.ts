/**
 * The file trees COPY and ADD read from, behind one interface: the build context as a
 * `TarTree` (the request's tar spooled once into one file under the data root and indexed —
 * entry names checked with image-store's tar-safety `entryComponents`, every file's sha256
 * taken on the way, so a fully cached build writes no file of the context and reads none
 * again), and a directory on disk as an `FsTree` (a stage's root filesystem, an ADDed archive
 * unpacked). Paths are relative, `/`-separated, '' is the root.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { decompress, entryComponents } from '@berth/image-store';

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  mtimeMs: number;
  size: number;
  linkname?: string;
}

export interface SourceTree {
  lstat(rel: string): Promise<TreeEntry | null>;
  readdir(rel: string): Promise<string[]>;
  open(rel: string): Readable;
  /** `sha256:…` of a file's content when the tree knows it without reading the file. */
  digest(rel: string): string | null;
}

/** A directory on disk. */
export class FsTree implements SourceTree {
  constructor(readonly root: string) {}
  private full(rel: string): string {
    return rel ? path.join(this.root, ...rel.split('/')) : this.root;
  }
  async lstat(rel: string): Promise<TreeEntry | null> {
    const st = await fsp.lstat(this.full(rel)).catch(() => null);
    if (!st) return null;
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : null;
    if (!type) return null;
    return { type, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs, size: st.size, ...(type === 'symlink' ? { linkname: await fsp.readlink(this.full(rel)) } : {}) };
  }
  async readdir(rel: string): Promise<string[]> {
    return (await fsp.readdir(this.full(rel)).catch(() => [] as string[])).sort();
  }
  open(rel: string): Readable {
    return createReadStream(this.full(rel));
  }
  digest(): string | null {
    return null;
  }
}

interface Node extends TreeEntry {
  offset: number;
  sha: string | null;
  children?: Set<string>;
}

const parentOf = (rel: string) => (rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '');
const baseOf = (rel: string) => rel.slice(rel.lastIndexOf('/') + 1);

/** The build context: one spool file of the files' contents and an index of the entries. */
export class TarTree implements SourceTree {
  private readonly nodes = new Map<string, Node>();

  private constructor(readonly spool: string) {
    this.nodes.set('', { type: 'dir', mode: 0o755, mtimeMs: 0, size: 0, offset: 0, sha: null, children: new Set() });
  }

  /** Reads the (compressed) tar `src` into `spool`; an entry with `..` or an absolute name is refused (400). */
  static async read(src: Readable, spool: string): Promise<TarTree> {
    const tree = new TarTree(spool);
    const { stream } = await decompress(src);
    const fh = await fsp.open(spool, 'w', 0o600);
    let offset = 0;
    const extract = tar.extract();
    try {
      // the feeding side's failure (a bad gzip, a cut body) ends the iteration with its error
      stream.on('error', (err: Error) => extract.destroy(err));
      stream.pipe(extract as unknown as NodeJS.WritableStream);
      for await (const entry of extract as unknown as AsyncIterable<Readable & { header: tar.Header }>) {
        const h = entry.header;
        const rel = entryComponents(h.name, 'build context path').join('/');
        const base = { mode: (h.mode ?? 0o644) & 0o7777, mtimeMs: h.mtime ? h.mtime.getTime() : 0, offset, sha: null as string | null };
        if (h.type === 'file' || h.type === 'contiguous-file') {
          const hash = createHash('sha256');
          let size = 0;
          for await (const chunk of entry as AsyncIterable<Buffer>) {
            hash.update(chunk);
            for (let off = 0; off < chunk.length; ) off += (await fh.write(chunk, off, chunk.length - off, offset + size + off)).bytesWritten;
            size += chunk.length;
          }
          if (rel) tree.put(rel, { ...base, type: 'file', size, sha: `sha256:${hash.digest('hex')}` });
          offset += size;
          continue;
        }
        entry.resume();
        if (!rel) continue;
        if (h.type === 'directory') tree.put(rel, { ...base, type: 'dir', size: 0, children: tree.nodes.get(rel)?.children ?? new Set() });
        else if (h.type === 'symlink') tree.put(rel, { ...base, type: 'symlink', size: 0, linkname: h.linkname ?? '' });
        else if (h.type === 'link') {
          const target = tree.nodes.get(entryComponents(h.linkname ?? '', 'hard link target').join('/'));
          if (target?.type === 'file') tree.put(rel, { ...target });
        }
        // devices, fifos: not part of a build context
      }
    } finally {
      stream.destroy();
      extract.destroy();
      await fh.close();
    }
    return tree;
  }

  private put(rel: string, node: Node): void {
    const parent = parentOf(rel);
    if (!this.nodes.get(parent)?.children) this.put(parent, { type: 'dir', mode: 0o755, mtimeMs: 0, size: 0, offset: 0, sha: null, children: new Set() });
    this.drop(rel);
    this.nodes.set(rel, node);
    this.nodes.get(parent)!.children!.add(baseOf(rel));
  }

  /** Removes `rel` (and what is below it). */
  drop(rel: string): void {
    const node = this.nodes.get(rel);
    if (!node || rel === '') return;
    for (const c of node.children ?? []) this.drop(`${rel}/${c}`);
    this.nodes.delete(rel);
    this.nodes.get(parentOf(rel))?.children?.delete(baseOf(rel));
  }

  /** Every path, parents before children. */
  paths(): string[] {
    return [...this.nodes.keys()].filter(Boolean).sort();
  }

  async lstat(rel: string): Promise<TreeEntry | null> {
    return this.nodes.get(rel) ?? null;
  }
  async readdir(rel: string): Promise<string[]> {
    return [...(this.nodes.get(rel)?.children ?? [])].sort();
  }
  open(rel: string): Readable {
    const n = this.nodes.get(rel);
    if (!n || n.type !== 'file') throw new Error(`not a file in the build context: ${rel}`);
    if (n.size === 0) return Readable.from([]);
    return createReadStream(this.spool, { start: n.offset, end: n.offset + n.size - 1 });
  }
  digest(rel: string): string | null {
    return this.nodes.get(rel)?.sha ?? null;
  }
  /** A file's content as text (the Dockerfile, .dockerignore); null when it is not a file. */
  async text(rel: string): Promise<string | null> {
    const n = this.nodes.get(rel);
    if (!n || n.type !== 'file') return null;
    const chunks: Buffer[] = [];
    for await (const c of this.open(rel) as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks).toString('utf8');
  }
}
