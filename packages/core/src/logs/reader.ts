/**
 * Reads a container's json-file log back for `docker logs` and attach's log replay:
 * rotated files (path.N … path.1, path) oldest first, tail, since/until, stream filters,
 * timestamps, and follow across rotation and truncation. Semantics follow dockerd's
 * json-file reader: tail is taken first, then since/until filter; until ends the read.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
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

/** Complete lines of a file from `offset`; returns them and the offset after the last "\n". */
async function readLinesFrom(fd: fsp.FileHandle, offset: number): Promise<{ lines: string[]; offset: number }> {
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

async function readWholeFile(file: string): Promise<string[]> {
  let fd: fsp.FileHandle;
  try {
    fd = await fsp.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  try {
    return (await readLinesFrom(fd, 0)).lines;
  } finally {
    await fd.close();
  }
}

/** Offset just after the last "\n" before `size` (0 when there is none). */
async function lastLineEnd(fh: fsp.FileHandle, size: number): Promise<number> {
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
async function tailOf(fh: fsp.FileHandle, end: number, n: number): Promise<string[]> {
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

/** Rotated files (oldest first) that are newer than the file with this inode. */
async function newerRotated(path: string, ino: number, dev: number, maxFile: number): Promise<string[]> {
  const found: string[] = [];
  for (let i = 1; i <= maxFile; i++) {
    let st: fs.Stats;
    try {
      st = await fsp.stat(`${path}.${i}`);
    } catch {
      break;
    }
    if (st.ino === ino && st.dev === dev) return found.reverse();
    found.push(`${path}.${i}`);
  }
  // The finished file is gone altogether: every rotated file left is newer than it.
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

  // History: rotated files are complete; the current file is read through an open handle
  // so that following continues exactly where the history ended.
  const files = rotatedLogFiles(path, opts.maxFile ?? 64);
  const older = files.filter((f) => f !== path);
  let cur: fsp.FileHandle | null = null;
  let curOffset = 0;
  try {
    cur = await fsp.open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }

  try {
    let history: string[] = [];
    const currentLines = async (): Promise<string[]> => {
      if (!cur) return [];
      const r = await readLinesFrom(cur, 0);
      curOffset = r.offset;
      return r.lines;
    };
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
        let fh: fsp.FileHandle;
        try {
          fh = await fsp.open(older[i], 'r');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw err;
        }
        try {
          const lines = await tailOf(fh, await lastLineEnd(fh, (await fh.stat()).size), tail - count);
          collected.unshift(lines);
          count += lines.length;
        } finally {
          await fh.close();
        }
      }
      history = collected.flat();
      for (const text of history) {
        if (signal?.aborted || stopped) return;
        const p = parse(text);
        const m = p && emit(p);
        if (m) yield m;
      }
    } else {
      for (const f of older) {
        for (const text of await readWholeFile(f)) {
          if (signal?.aborted || stopped) return;
          const p = parse(text);
          const m = p && emit(p);
          if (m) yield m;
        }
      }
      for (const text of await currentLines()) {
        if (signal?.aborted || stopped) return;
        const p = parse(text);
        const m = p && emit(p);
        if (m) yield m;
      }
    }
    if (!opts.follow || stopped) return;

    const pollMs = opts.pollMs ?? 500;
    for (;;) {
      if (signal?.aborted || stopped) return;
      if (!cur) {
        try {
          cur = await fsp.open(path, 'r');
          curOffset = 0;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          await waitForChange(dir, base, pollMs, signal);
          continue;
        }
      }
      // Truncated in place (max-file 1): start over at the beginning.
      const st = await cur.stat();
      if (st.size < curOffset) curOffset = 0;
      const r = await readLinesFrom(cur, curOffset);
      curOffset = r.offset;
      for (const text of r.lines) {
        if (signal?.aborted || stopped) return;
        const p = parse(text);
        const m = p && emit(p);
        if (m) yield m;
      }
      if (r.lines.length) continue;
      // Rotated: the path is a new file. Drain the old handle once more, then switch.
      let rotated = false;
      try {
        const now = await fsp.stat(path);
        rotated = now.ino !== st.ino || now.dev !== st.dev;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        rotated = true;
      }
      if (rotated) {
        const last = await readLinesFrom(cur, curOffset);
        for (const text of last.lines) {
          if (signal?.aborted || stopped) return;
          const p = parse(text);
          const m = p && emit(p);
          if (m) yield m;
        }
        await cur.close();
        cur = null;
        // Files rotated since (the reader fell behind more than one rotation): read the
        // ones newer than the file just finished, oldest first, before the new current one.
        for (const f of await newerRotated(path, st.ino, st.dev, opts.maxFile ?? 64)) {
          for (const text of await readWholeFile(f)) {
            if (signal?.aborted || stopped) return;
            const p = parse(text);
            const m = p && emit(p);
            if (m) yield m;
          }
        }
        continue;
      }
      await waitForChange(dir, base, pollMs, signal);
    }
  } finally {
    await cur?.close();
  }
}
