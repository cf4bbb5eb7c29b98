/**
 * COPY and ADD: the sources (files, directories, wildcards) resolved inside their tree (the
 * context or a stage's root filesystem, tree.ts) without ever leaving it, a checksum of what would be
 * copied (the cache key), and the layer tar that puts them at the destination. A symlink in
 * the sources is copied as a link, never followed; ADD unpacks a local tar archive (plain or
 * compressed) into the destination with image-store's tar-safety; remote URLs are refused.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import tar from 'tar-stream';
import { InvalidParameterError, NotImplementedError, withExactIds } from '@berth/core';
import { detectCompression, unpackLayer } from '@berth/image-store';
import { resolveInside } from './fs-inside.js';
import { FsTree, type SourceTree, type TreeEntry } from './tree.js';

export interface CopyItem {
  tree: SourceTree;
  /** Path of the object in its tree. */
  src: string;
  /** Path in the image, without a leading slash. */
  dest: string;
  st: TreeEntry;
}

export interface CopyRequest {
  tree: SourceTree;
  sources: string[];
  /** Absolute destination in the image (WORKDIR applied). */
  dest: string;
  chown: { uid: number; gid: number } | null;
  /** ADD: local tar archives are unpacked (into `scratch`, a temp dir the caller removes). */
  add: boolean;
  scratch: string;
}

const GLOB = /[*?[]/;

function globRegex(pat: string): RegExp {
  let re = '';
  for (let i = 0; i < pat.length; i++) {
    const c = pat[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const j = pat.indexOf(']', i + 1);
      if (j < 0) throw new InvalidParameterError(`syntax error in pattern: ${pat}`);
      re += `[${pat.slice(i + 1, j).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
      i = j;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The context-relative paths a source names (wildcards in any component, matched per component). */
async function expandSource(tree: SourceTree, src: string): Promise<string[]> {
  const comps = src.split('/').filter((c) => c && c !== '.');
  let found: string[] = [''];
  for (const c of comps) {
    const next: string[] = [];
    for (const base of found) {
      if (!GLOB.test(c)) {
        next.push(base ? `${base}/${c}` : c);
        continue;
      }
      const dir = await resolveInside(tree, base);
      const re = globRegex(c);
      for (const n of await tree.readdir(dir)) if (re.test(n)) next.push(dir ? `${dir}/${n}` : n);
    }
    found = next;
  }
  return found;
}

async function walkInto(tree: SourceTree, src: string, dest: string, st: TreeEntry, out: CopyItem[]): Promise<void> {
  out.push({ tree, src, dest, st });
  if (st.type !== 'dir') return;
  for (const name of await tree.readdir(src)) {
    const s = src ? `${src}/${name}` : name;
    const child = await tree.lstat(s);
    if (child) await walkInto(tree, s, dest ? `${dest}/${name}` : name, child, out);
  }
}

async function isArchive(tree: SourceTree, rel: string): Promise<boolean> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of tree.open(rel) as AsyncIterable<Buffer>) {
    chunks.push(c);
    n += c.length;
    if (n >= 512) break;
  }
  const head = Buffer.concat(chunks).subarray(0, 512);
  if (detectCompression(head) !== 'none') return true;
  return head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar';
}

/** What the COPY/ADD puts where (no I/O besides reading the sources). */
export async function collect(req: CopyRequest): Promise<CopyItem[]> {
  const dest = req.dest;
  const destDir = dest.endsWith('/');
  const items: CopyItem[] = [];
  const expanded: string[] = [];
  for (const s of req.sources) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) throw new NotImplementedError(`${req.add ? 'ADD' : 'COPY'} from a remote URL (${s}) is not supported by berth; download it in the context or with RUN`);
    const names = await expandSource(req.tree, s);
    if (names.length === 0 && GLOB.test(s)) throw new InvalidParameterError(`COPY failed: no source files were specified`);
    expanded.push(...names);
  }
  if (expanded.length > 1 && !destDir) throw new InvalidParameterError('When using COPY with more than one source file, the destination must be a directory and end with a /');
  const destRel = dest.replace(/^\/+/, '').replace(/\/+$/, '');
  let n = 0;
  for (const rel of expanded) {
    // the parents are resolved inside the tree; the last component is never followed (a link is copied as a link)
    const src = await resolveInside(req.tree, rel, false);
    const st = await req.tree.lstat(src);
    if (!st) throw new InvalidParameterError(`COPY failed: file not found in build context or excluded by .dockerignore: stat ${rel}: file does not exist`);
    if (st.type === 'dir') await walkInto(req.tree, src, destRel, st, items);
    else if (req.add && st.type === 'file' && (await isArchive(req.tree, src))) {
      const tmp = path.join(req.scratch, `add-${n++}`);
      await fsp.mkdir(tmp, { recursive: true });
      await unpackLayer(req.tree.open(src), tmp, { devices: false, chown: false, xattrs: false, overlayWhiteouts: false });
      const unpacked = new FsTree(tmp);
      await walkInto(unpacked, '', destRel, (await unpacked.lstat(''))!, items);
    } else {
      const target = destDir || expanded.length > 1 ? `${destRel ? `${destRel}/` : ''}${path.posix.basename(rel)}` : destRel;
      items.push({ tree: req.tree, src, dest: target, st });
    }
  }
  return items.filter((i) => i.dest !== '');
}

/** The checksum of the items (paths, modes, link targets, contents): COPY/ADD's cache key part. */
export async function checksum(items: CopyItem[], chown: CopyRequest['chown']): Promise<string> {
  const h = createHash('sha256');
  h.update(JSON.stringify(chown));
  for (const it of items) {
    h.update(`${it.dest}\0${it.st.type}\0${it.st.mode}\0`);
    if (it.st.type === 'symlink') h.update(it.st.linkname ?? '');
    else if (it.st.type === 'file') {
      const known = it.tree.digest(it.src);
      if (known) h.update(known);
      else {
        const fh = createHash('sha256');
        for await (const chunk of it.tree.open(it.src) as AsyncIterable<Buffer>) fh.update(chunk);
        h.update(`sha256:${fh.digest('hex')}`);
      }
    }
    h.update('\0');
  }
  return `sha256:${h.digest('hex')}`;
}

/** The layer tar of the items (owner from --chown, else root as dockerd). */
export function layerTar(items: CopyItem[], chown: CopyRequest['chown']): Readable {
  const pack = tar.pack();
  const out = new PassThrough();
  (pack as unknown as Readable).pipe(out);
  out.on('close', () => pack.destroy());
  const owner = { uid: chown?.uid ?? 0, gid: chown?.gid ?? 0 };
  const entry = (h: Partial<tar.Header> & { name: string }, it?: CopyItem) =>
    new Promise<void>((resolve, reject) => {
      const header = withExactIds(h);
      if (!it) {
        if (header.type === 'file') pack.entry(header, Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
        else pack.entry(header, (err) => (err ? reject(err) : resolve()));
        return;
      }
      const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
      const rs = it.tree.open(it.src);
      rs.on('error', (err) => {
        sink.destroy(err);
        reject(err);
      });
      sink.on('close', () => rs.destroy());
      rs.pipe(sink as unknown as NodeJS.WritableStream);
    });
  void (async () => {
    for (const it of items) {
      const base = { name: it.dest, mode: it.st.mode & 0o7777, ...owner, mtime: new Date(Math.floor(it.st.mtimeMs / 1000) * 1000) };
      if (it.st.type === 'dir') await entry({ ...base, name: `${it.dest}/`, type: 'directory' });
      else if (it.st.type === 'symlink') await entry({ ...base, type: 'symlink', linkname: it.st.linkname ?? '' });
      else await entry({ ...base, type: 'file', size: it.st.size }, it.st.size ? it : undefined);
    }
    pack.finalize();
  })().catch((err: unknown) => {
    out.destroy(err as Error);
    pack.destroy(err as Error);
  });
  return out;
}
