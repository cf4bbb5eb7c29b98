/**
 * Reads a container's json-file log back for `docker logs` and attach's log replay:
 * rotated files (path.N … path.1, path) oldest first, tail, since/until, stream filters,
 * timestamps, and follow across rotation and truncation. Semantics follow dockerd's
 * json-file reader: tail is taken first, then since/until filter; until ends the read.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { parseJsonLogLine, rotatedLogFiles, type LogStream } from './jsonfile.js';
import { formatLogTime, parseLogTime, toNanos } from './time.js';

export type LogTime = number | string | Date | bigint;

export interface ReadLogsOptions {
  /** Only entries at or after this time (UNIX seconds, RFC 3339, Date, or ns bigint). */
  since?: LogTime;
  /** Only entries at or before this time; reading stops at the first later entry. */
  until?: LogTime;
  /** Only the last N entries of the history (both streams counted); < 0 or absent = all. */
  tail?: number;
  /** Prefix each line with its time (RFC 3339, nine fraction digits) and a space. */
  timestamps?: boolean;
  /** Keep reading new entries after the history, until `signal` aborts or `until` passes. */
  follow?: boolean;
  stdout?: boolean;
  stderr?: boolean;
  signal?: AbortSignal;
  /** How many rotated files to look for (default 64). */
  maxFile?: number;
  /** Fallback re-check interval while following, in ms (file events usually come first). */
  pollMs?: number;
  /**
   * Following ends at the end of the log once this aborts: the writer has finished (the
   * container exited and its runtime backend converted its last output before reporting the
   * exit). Only a read that began after the abort counts as the end, so nothing written before
   * the abort is missed.
   */
  drain?: AbortSignal;
}

export interface LogMessage {
  stream: LogStream;
  line: Buffer;
  /** json-file time (RFC 3339, UTC). */
  time: string;
}

interface Parsed {
  stream: LogStream;
  log: string;
  time: string;
  ns: bigint;
}

function parse(text: string): Parsed | null {
  const e = parseJsonLogLine(text);
  if (!e) return null;
  let ns: bigint;
  try {
    ns = parseLogTime(e.time);
  } catch {
    return null;
  }
  return { stream: e.stream, log: typeof e.line === 'string' ? e.line : e.line.toString('utf8'), time: e.time, ns };
}

/**
 * An open log file. Files are opened synchronously (see readLogs) and read asynchronously
 * through their descriptor, so a rename by the writer afterwards does not matter.
 */
interface Handle {
  read(buf: Buffer, off: number, len: number, pos: number): Promise<{ bytesRead: number }>;
  stat(): Promise<fs.Stats>;
  close(): Promise<void>;
}

function handleOf(fd: number): Handle {
  let closed = false;
  return {
    read: (b, off, len, pos) =>
      new Promise((resolve, reject) => fs.read(fd, b, off, len, pos, (err, n) => (err ? reject(err) : resolve({ bytesRead: n })))),
    stat: () => new Promise((resolve, reject) => fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st)))),
    close: () => {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise((resolve) => fs.close(fd, () => resolve()));
    },
  };
}

function openSync(path: string): Handle | null {
  try {
    return handleOf(fs.openSync(path, 'r'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function statSync(path: string): fs.Stats | null {
  try {
    return fs.statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Complete lines of a file from `offset`; returns them and the offset after the last "\n". */
async function readLinesFrom(fd: Handle, offset: number): Promise<{ lines: string[]; offset: number }> {
  const lines: string[] = [];
  const chunk = Buffer.allocUnsafe(256 * 1024);
  let pending: Buffer[] = [];
  let pos = offset;
  let consumed = offset;
  for (;;) {
    const { bytesRead } = await fd.read(chunk, 0, chunk.length, pos);
    if (bytesRead === 0) break;
    pos += bytesRead;
    let start = 0;
    const view = chunk.subarray(0, bytesRead);
    for (;;) {
      const nl = view.indexOf(10, start);
      if (nl < 0) break;
      const piece = view.subarray(start, nl);
      const full = pending.length ? Buffer.concat([...pending, piece]) : piece;
      pending = [];
      if (full.length) lines.push(full.toString('utf8'));
      consumed = pos - bytesRead + nl + 1;
      start = nl + 1;
    }
    if (start < view.length) pending.push(Buffer.from(view.subarray(start)));
  }
  return { lines, offset: consumed };
}

/** Offset just after the last "\n" before `size` (0 when there is none). */
async function lastLineEnd(fh: Handle, size: number): Promise<number> {
  const chunk = Buffer.allocUnsafe(64 * 1024);
  let pos = size;
  while (pos > 0) {
    const len = Math.min(chunk.length, pos);
    pos -= len;
    const { bytesRead } = await fh.read(chunk, 0, len, pos);
    const nl = chunk.subarray(0, bytesRead).lastIndexOf(10);
    if (nl >= 0) return pos + nl + 1;
  }
  return 0;
}

/** The last `n` non-empty lines of [0, end) (end just after a "\n"), reading backwards. */
async function tailOf(fh: Handle, end: number, n: number): Promise<string[]> {
  if (n <= 0 || end <= 0) return [];
  const chunks: Buffer[] = [];
  let pos = end;
  let newlines = 0;
  while (pos > 0 && newlines <= n) {
    const len = Math.min(64 * 1024, pos);
    pos -= len;
    const b = Buffer.allocUnsafe(len);
    const { bytesRead } = await fh.read(b, 0, len, pos);
    const piece = b.subarray(0, bytesRead);
    chunks.unshift(piece);
    for (let i = piece.indexOf(10); i >= 0; i = piece.indexOf(10, i + 1)) newlines++;
  }
  const lines = Buffer.concat(chunks).toString('utf8').split('\n');
  lines.pop(); // after the final "\n"
  if (pos > 0) lines.shift(); // cut by the chunk boundary: not a whole line
  return lines.filter((l) => l.length > 0).slice(-n);
}

/**
 * Rotated files (oldest first, opened) that are newer than the file `held`. Synchronous, so
 * that the writer in this process (the runtime backend's log pump writes synchronously)
 * cannot rotate in the middle of the scan.
 */
function newerRotatedSync(path: string, held: fs.Stats, maxFile: number): Handle[] {
  const found: Handle[] = [];
  for (let i = 1; i <= maxFile; i++) {
    const st = statSync(`${path}.${i}`);
    if (!st || (st.ino === held.ino && st.dev === held.dev)) break;
    const h = openSync(`${path}.${i}`);
    if (h) found.push(h);
  }
  // If the held file is gone altogether, every rotated file left is newer than it.
  return found.reverse();
}

function waitForChange(dir: string, base: string, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    let watcher: fs.FSWatcher | undefined;
    const done = (): void => {
      clearTimeout(timer);
      watcher?.close();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    try {
      watcher = fs.watch(dir, (_ev, name) => {
        if (!name || name === base || name.startsWith(`${base}.`)) done();
      });
      watcher.on('error', done);
    } catch {
      /* directory gone or no inotify: the timer still fires */
    }
    if (signal) {
      if (signal.aborted) done();
      else signal.addEventListener('abort', done, { once: true });
    }
  });
}

/**
 * Read a json-file log. Yields entries oldest first; with `follow` keeps yielding new
 * entries (across rotation) until `signal` aborts or an entry is past `until`.
 */
export async function* readLogs(path: string, opts: ReadLogsOptions = {}): AsyncGenerator<LogMessage> {
  const since = opts.since !== undefined ? toNanos(opts.since) : undefined;
  const until = opts.until !== undefined ? toNanos(opts.until) : undefined;
  const wantOut = opts.stdout ?? true;
  const wantErr = opts.stderr ?? true;
  const tail = opts.tail !== undefined && opts.tail >= 0 ? Math.floor(opts.tail) : undefined;
  const signal = opts.signal;
  const dir = nodePath.dirname(path);
  const base = nodePath.basename(path);

  let stopped = false;
  const emit = (p: Parsed): LogMessage | null => {
    if (since !== undefined && p.ns < since) return null;
    if (until !== undefined && p.ns > until) {
      stopped = true;
      return null;
    }
    if (p.stream === 'stdout' ? !wantOut : !wantErr) return null;
    const text = opts.timestamps ? `${formatLogTime(p.ns, true)} ${p.log}` : p.log;
    return { stream: p.stream, line: Buffer.from(text, 'utf8'), time: p.time };
  };
  /** The entries of these lines; returns false when reading should end (abort, until). */
  function* entries(lines: string[]): Generator<LogMessage, boolean> {
    for (const text of lines) {
      if (signal?.aborted || stopped) return false;
      const p = parse(text);
      const m = p && emit(p);
      if (m) yield m;
    }
    return !(signal?.aborted || stopped);
  }

  // History: rotated files are complete; the current file is read through a handle so that
  // following continues exactly where the history ended. All of them are opened in one
  // synchronous step: the log pump in this process writes (and rotates) synchronously, so it
  // cannot rotate between the listing and the opening.
  const maxFile = opts.maxFile ?? 64;
  const held = new Set<Handle>();
  const hold = (h: Handle | null): Handle | null => {
    if (h) held.add(h);
    return h;
  };
  const release = async (h: Handle): Promise<void> => {
    held.delete(h);
    await h.close();
  };
  const older: Handle[] = [];
  for (const f of rotatedLogFiles(path, maxFile)) {
    if (f === path) continue;
    const h = hold(openSync(f));
    if (h) older.push(h);
  }
  let cur = hold(openSync(path));
  let curOffset = 0;

  try {
    if (tail !== undefined) {
      // Read backwards, newest file first, only as far as the last `tail` lines reach.
      const collected: string[][] = [];
      let count = 0;
      if (cur) {
        const end = await lastLineEnd(cur, (await cur.stat()).size);
        curOffset = end;
        const lines = await tailOf(cur, end, tail);
        collected.unshift(lines);
        count += lines.length;
      }
      for (let i = older.length - 1; i >= 0 && count < tail; i--) {
        const fh = older[i];
        const lines = await tailOf(fh, await lastLineEnd(fh, (await fh.stat()).size), tail - count);
        collected.unshift(lines);
        count += lines.length;
      }
      for (const h of older) await release(h);
      if (!(yield* entries(collected.flat()))) return;
    } else {
      for (const h of older) {
        const { lines } = await readLinesFrom(h, 0);
        await release(h);
        if (!(yield* entries(lines))) return;
      }
      if (cur) {
        const r = await readLinesFrom(cur, 0);
        curOffset = r.offset;
        if (!(yield* entries(r.lines))) return;
      }
    }
    if (!opts.follow || stopped) return;

    const pollMs = opts.pollMs ?? 500;
    const drain = opts.drain;
    // Wake the wait below when the drain starts, not only on file events and the poll.
    const wake = drain ? AbortSignal.any([drain, ...(signal ? [signal] : [])]) : signal;
    for (;;) {
      if (signal?.aborted || stopped) return;
      const draining = drain?.aborted === true;
      if (!cur) {
        cur = hold(openSync(path));
        curOffset = 0;
        if (!cur) {
          if (draining) return; // finished, and no log was ever written
          if (drain?.aborted) continue;
          await waitForChange(dir, base, pollMs, wake);
          continue;
        }
      }
      // Truncated in place (max-file 1): start over at the beginning.
      const st = await cur.stat();
      if (st.size < curOffset) curOffset = 0;
      const r = await readLinesFrom(cur, curOffset);
      curOffset = r.offset;
      if (!(yield* entries(r.lines))) return;
      if (r.lines.length) continue;
      // Rotated: the path is a new file. In one synchronous step, open it and the files
      // rotated since the one held (the reader may have fallen behind by more than one
      // rotation); then drain the held file, those files oldest first, and go on.
      const now = statSync(path);
      if (!now || now.ino !== st.ino || now.dev !== st.dev) {
        const between = newerRotatedSync(path, st, maxFile);
        for (const h of between) held.add(h);
        const next = hold(openSync(path));
        const last = await readLinesFrom(cur, curOffset);
        await release(cur);
        cur = next;
        curOffset = 0;
        if (!(yield* entries(last.lines))) return;
        for (const h of between) {
          const { lines } = await readLinesFrom(h, 0);
          await release(h);
          if (!(yield* entries(lines))) return;
        }
        continue;
      }
      // Caught up with a writer that had already finished when this read began: the end.
      if (draining) return;
      if (drain?.aborted) continue; // finished during the read: read once more
      await waitForChange(dir, base, pollMs, wake);
    }
  } finally {
    for (const h of held) await h.close();
  }
}
