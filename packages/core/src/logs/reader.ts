/**
 * Reads a container's json-file log back for `docker logs` and attach's log replay:
 * rotated files (path.N … path.1, path) oldest first, tail, since/until, stream filters,
 * timestamps, and follow across rotation and truncation. Semantics follow dockerd's
 * json-file reader: tail is taken first, then since/until filter; until ends the read.
 * Memory stays bounded whatever the size of the log: lines are read in blocks and yielded as
 * they come (lines.ts), a tail is found by reading backwards, and the generator reads on
 * only when its consumer asks for the next entry.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { parseJsonLogLine, rotatedLogFiles, type LogStream } from './jsonfile.js';
import { afterLastMatch, lastLineEnd, lineBatches, openLogFileSync, tailStart, type LogFile } from './lines.js';
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

function statSync(path: string): fs.Stats | null {
  try {
    return fs.statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** How far out of time order entries may be and still be found by a since read. */
const SINCE_SLACK_NS = 1_000_000_000n;

/**
 * Rotated files (oldest first, opened) that are newer than the file `held`. Synchronous, so
 * that the writer in this process (the runtime backend's log pump writes synchronously)
 * cannot rotate in the middle of the scan.
 */
function newerRotatedSync(path: string, held: fs.Stats, maxFile: number): LogFile[] {
  const found: LogFile[] = [];
  for (let i = 1; i <= maxFile; i++) {
    const st = statSync(`${path}.${i}`);
    if (!st || (st.ino === held.ino && st.dev === held.dev)) break;
    const h = openLogFileSync(`${path}.${i}`);
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
  /**
   * The entries of [start, end) of a file, a block at a time; returns the offset after the
   * last complete line read, or null when reading should end.
   */
  async function* fromFile(f: LogFile, start: number, end?: number): AsyncGenerator<LogMessage, number | null> {
    let next = start;
    for await (const batch of lineBatches(f, start, end)) {
      next = batch.next;
      if (!(yield* entries(batch.lines))) return null;
    }
    return next;
  }

  // History: rotated files are complete; the current file is read through a handle so that
  // following continues exactly where the history ended. All of them are opened in one
  // synchronous step: the log pump in this process writes (and rotates) synchronously, so it
  // cannot rotate between the listing and the opening.
  const maxFile = opts.maxFile ?? 64;
  const held = new Set<LogFile>();
  const hold = (h: LogFile | null): LogFile | null => {
    if (h) held.add(h);
    return h;
  };
  const release = async (h: LogFile): Promise<void> => {
    held.delete(h);
    await h.close();
  };
  const older: LogFile[] = [];
  for (const f of rotatedLogFiles(path, maxFile)) {
    if (f === path) continue;
    const h = hold(openLogFileSync(f));
    if (h) older.push(h);
  }
  let cur = hold(openLogFileSync(path));
  let curOffset = 0;

  try {
    // Where the history begins: a file (an index into older, or older.length for the current
    // one) and an offset in it. With a tail, found by reading backwards, newest file first,
    // only as far as the last `tail` lines reach; the current file is then read up to where
    // its last line ended at that moment, and following goes on from there.
    let first = 0;
    let firstOffset = 0;
    let curEnd: number | undefined;
    if (tail !== undefined) {
      let want = tail;
      first = older.length + 1; // nothing
      if (cur) {
        curEnd = await lastLineEnd(cur, (await cur.stat()).size);
        curOffset = curEnd;
        const t = await tailStart(cur, curEnd, want);
        want -= t.found;
        if (t.found > 0) [first, firstOffset] = [older.length, t.offset];
      }
      for (let i = older.length - 1; i >= 0 && want > 0; i--) {
        const t = await tailStart(older[i], await lastLineEnd(older[i], (await older[i].stat()).size), want);
        want -= t.found;
        if (t.found > 0) [first, firstOffset] = [i, t.offset];
      }
    }
    if (since !== undefined && tail === undefined) {
      // With since alone, skip what is older without reading it: entries are written in
      // time order, so the history begins after the newest entry older than since (less a
      // second for entries of the two streams that came slightly out of order), found by
      // reading backwards, newest file first. The since filter still applies to every entry.
      const bound = since - SINCE_SLACK_NS;
      const beforeBound = (text: string): boolean => {
        const p = parse(text);
        return p !== null && p.ns < bound;
      };
      for (let i = older.length; i >= 0; i--) {
        const f = i === older.length ? cur : older[i];
        if (!f) continue;
        const at = await afterLastMatch(f, await lastLineEnd(f, (await f.stat()).size), beforeBound);
        if (at !== null) {
          [first, firstOffset] = [i, at];
          break;
        }
      }
    }
    for (let i = 0; i < older.length; i++) {
      const h = older[i];
      const done = i < first ? 0 : yield* fromFile(h, i === first ? firstOffset : 0);
      await release(h);
      if (done === null) return;
    }
    if (cur && first <= older.length) {
      const next = yield* fromFile(cur, first === older.length ? firstOffset : 0, curEnd);
      if (next === null) return;
      curOffset = curEnd ?? next;
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
        cur = hold(openLogFileSync(path));
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
      const next = yield* fromFile(cur, curOffset);
      if (next === null) return;
      const advanced = next !== curOffset;
      curOffset = next;
      if (advanced) continue;
      // Rotated: the path is a new file. In one synchronous step, open it and the files
      // rotated since the one held (the reader may have fallen behind by more than one
      // rotation); then drain the held file, those files oldest first, and go on.
      const now = statSync(path);
      if (!now || now.ino !== st.ino || now.dev !== st.dev) {
        const between = newerRotatedSync(path, st, maxFile);
        for (const h of between) held.add(h);
        const following = hold(openLogFileSync(path));
        const last = yield* fromFile(cur, curOffset);
        await release(cur);
        cur = following;
        curOffset = 0;
        if (last === null) return;
        for (const h of between) {
          const done = yield* fromFile(h, 0);
          await release(h);
          if (done === null) return;
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
