/**
 * COPY and ADD: the sources (files, directories, wildcards) resolved inside their root (the
 * context or a stage's root filesystem) without ever leaving it, a checksum of what would be
 * copied (the cache key), and the layer tar that puts them at the destination. A symlink in
 * the sources is copied as a link, never followed; ADD unpacks a local tar archive (plain or
 * compressed) into the destination with image-store's tar-safety; remote URLs are refused.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import tar from 'tar-stream';
import { InvalidParameterError, NotImplementedError, withExactIds } from '@berth/core';
import { detectCompression, unpackLayer } from '@berth/image-store';
import { resolveInside } from './fs-inside.js';

export interface CopyItem {
  /** Host path of the object (inside its root). */
  host: string;
  /** Path in the image, without a leading slash. */
  dest: string;
  st: Stats;
}

export interface CopyRequest {
  root: string;
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
async function expandSource(root: string, src: string): Promise<string[]> {
  const comps = src.split('/').filter((c) => c && c !== '.');
  let found: string[] = [''];
  for (const c of comps) {
    const next: string[] = [];
    for (const base of found) {
      if (!GLOB.test(c)) {
        next.push(base ? `${base}/${c}` : c);
        continue;
      }
      const dir = await resolveInside(root, base);
      const re = globRegex(c);
      const names = await fsp.readdir(dir).catch(() => [] as string[]);
      for (const n of names.sort()) if (re.test(n)) next.push(base ? `${base}/${n}` : n);
    }
    found = next;
  }
  return found;
}

async function walkInto(host: string, dest: string, st: Stats, out: CopyItem[]): Promise<void> {
  out.push({ host, dest, st });
  if (!st.isDirectory()) return;
  for (const name of (await fsp.readdir(host)).sort()) {
    const h = path.join(host, name);
    await walkInto(h, dest ? `${dest}/${name}` : name, await fsp.lstat(h), out);
  }
}

async function isArchive(file: string): Promise<boolean> {
  const fh = await fsp.open(file, 'r');
  try {
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fh.read(buf, 0, 512, 0);
    const head = buf.subarray(0, bytesRead);
    if (detectCompression(head) !== 'none') return true;
    return bytesRead >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar';
  } finally {
    await fh.close();
  }
}

/** What the COPY/ADD puts where (no I/O besides reading the sources). */
export async function collect(req: CopyRequest): Promise<CopyItem[]> {
  const dest = req.dest;
  const destDir = dest.endsWith('/');
  const items: CopyItem[] = [];
  const expanded: string[] = [];
  for (const s of req.sources) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) throw new NotImplementedError(`${req.add ? 'ADD' : 'COPY'} from a remote URL (${s}) is not supported by berth; download it in the context or with RUN`);
    const names = await expandSource(req.root, s);
    if (names.length === 0 && GLOB.test(s)) throw new InvalidParameterError(`COPY failed: no source files were specified`);
    expanded.push(...names);
  }
  if (expanded.length > 1 && !destDir) throw new InvalidParameterError('When using COPY with more than one source file, the destination must be a directory and end with a /');
  const destRel = dest.replace(/^\/+/, '').replace(/\/+$/, '');
  let n = 0;
  for (const rel of expanded) {
    // the parents are resolved inside the root; the last component is never followed (a link is copied as a link)
    const host = await resolveInside(req.root, rel, false);
    const st = await fsp.lstat(host).catch(() => null);
    if (!st) throw new InvalidParameterError(`COPY failed: file not found in build context or excluded by .dockerignore: stat ${rel}: file does not exist`);
    if (st.isDirectory()) await walkInto(host, destRel, st, items);
    else if (req.add && st.isFile() && (await isArchive(host))) {
      const tmp = path.join(req.scratch, `add-${n++}`);
      await fsp.mkdir(tmp, { recursive: true });
      await unpackLayer(createReadStream(host), tmp, { devices: false, chown: false, xattrs: false, overlayWhiteouts: false });
      await walkInto(tmp, destRel, await fsp.lstat(tmp), items);
    } else {
      const target = destDir || expanded.length > 1 ? `${destRel ? `${destRel}/` : ''}${path.basename(rel)}` : destRel;
      items.push({ host, dest: target, st });
    }
  }
  return items.filter((i) => i.dest !== '');
}

/** The checksum of the items (paths, modes, link targets, contents): COPY/ADD's cache key part. */
export async function checksum(items: CopyItem[], chown: CopyRequest['chown']): Promise<string> {
  const h = createHash('sha256');
  h.update(JSON.stringify(chown));
  for (const it of items) {
    h.update(`${it.dest}\0${it.st.mode}\0`);
    if (it.st.isSymbolicLink()) h.update(await fsp.readlink(it.host));
    else if (it.st.isFile()) {
      for await (const chunk of createReadStream(it.host)) h.update(chunk as Buffer);
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
  const entry = (h: Partial<tar.Header> & { name: string }, file?: string) =>
    new Promise<void>((resolve, reject) => {
      const header = withExactIds(h);
      if (!file) {
        if (header.type === 'file') pack.entry(header, Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
        else pack.entry(header, (err) => (err ? reject(err) : resolve()));
        return;
      }
      const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
      const rs = createReadStream(file);
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
      if (it.st.isDirectory()) await entry({ ...base, name: `${it.dest}/`, type: 'directory' });
      else if (it.st.isSymbolicLink()) await entry({ ...base, type: 'symlink', linkname: await fsp.readlink(it.host) });
      else if (it.st.isFile()) await entry({ ...base, type: 'file', size: it.st.size }, it.st.size ? it.host : undefined);
    }
    pack.finalize();
  })().catch((err: unknown) => {
    out.destroy(err as Error);
    pack.destroy(err as Error);
  });
  return out;
}
