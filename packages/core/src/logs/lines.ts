/**
 * Line access to an open json-file log with bounded memory: complete lines read forward in
 * fixed-size blocks and handed out a block's worth at a time, and the start of the last N
 * lines found by reading backwards from the end. Memory per reader is one block plus the
 * line being assembled, whatever the size of the file; a "line" longer than MAX_LINE (a
 * corrupt file, e.g. NULs left by a crash) is skipped instead of being assembled.
 */
import * as fs from 'node:fs';

/** Read size, forward and backward. */
export const LOG_BLOCK = 64 * 1024;
/**
 * The longest json-file line assembled. Writers split long output (dockerd at 16 KiB of
 * payload, conmon at its buffer size), so a real entry is far shorter; a longer one is skipped.
 */
export const MAX_LOG_LINE = 1024 * 1024;

/**
 * An open log file, read by offset through its descriptor, so that a rename by the writer
 * after the open does not matter.
 */
export interface LogFile {
  read(buf: Buffer, off: number, len: number, pos: number): Promise<{ bytesRead: number }>;
  stat(): Promise<fs.Stats>;
  close(): Promise<void>;
}

export function logFileOf(fd: number): LogFile {
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

/** Open a log file for reading; null when it does not exist. */
export function openLogFileSync(path: string): LogFile | null {
  try {
    return logFileOf(fs.openSync(path, 'r'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export interface LineBatch {
  /** Complete, non-empty lines (without "\n") of one block, in order. */
  lines: string[];
  /** The offset just after the last "\n" read so far: where a later read goes on. */
  next: number;
}

/**
 * The complete lines of `f` from `start` (the beginning of a line) up to `end` (default: the
 * end of the file as it grows), one batch per block read. The lazy generator reads the next
 * block only when the consumer asks for the next batch, so a slow consumer slows the reading.
 * An unfinished last line is left for a later read (`next` stays before it).
 */
export async function* lineBatches(f: LogFile, start: number, end = Number.POSITIVE_INFINITY): AsyncGenerator<LineBatch> {
  const block = Buffer.allocUnsafe(LOG_BLOCK);
  let pending: Buffer[] = [];
  let pendingLen = 0;
  let skipping = false; // inside a line longer than MAX_LOG_LINE
  let pos = start;
  let next = start;
  while (pos < end) {
    const { bytesRead } = await f.read(block, 0, Math.min(LOG_BLOCK, end - pos), pos);
    if (bytesRead === 0) break;
    const view = block.subarray(0, bytesRead);
    const lines: string[] = [];
    let s = 0;
    for (let nl = view.indexOf(10); nl >= 0; nl = view.indexOf(10, nl + 1)) {
      if (skipping) skipping = false;
      else if (pendingLen > 0) {
        pending.push(view.subarray(s, nl));
        lines.push(Buffer.concat(pending).toString('utf8'));
      } else if (nl > s) lines.push(view.toString('utf8', s, nl));
      pending = [];
      pendingLen = 0;
      s = nl + 1;
    }
    if (s > 0) next = pos + s;
    if (s < bytesRead && !skipping) {
      if (pendingLen + bytesRead - s > MAX_LOG_LINE) {
        skipping = true;
        pending = [];
        pendingLen = 0;
      } else {
        // Copied: the block is reused for the next read.
        pending.push(Buffer.from(view.subarray(s)));
        pendingLen += bytesRead - s;
      }
    }
    pos += bytesRead;
    if (s > 0) yield { lines, next };
  }
}

/** Offset just after the last "\n" before `size` (0 when there is none). */
export async function lastLineEnd(f: LogFile, size: number): Promise<number> {
  const block = Buffer.allocUnsafe(LOG_BLOCK);
  let pos = size;
  while (pos > 0) {
    const len = Math.min(LOG_BLOCK, pos);
    pos -= len;
    const { bytesRead } = await f.read(block, 0, len, pos);
    const nl = block.subarray(0, bytesRead).lastIndexOf(10);
    if (nl >= 0) return pos + nl + 1;
  }
  return 0;
}

/**
 * Where the last `n` non-empty lines of [0, end) begin (`end` just after a "\n"), reading
 * backwards block by block. `found` < n means the range holds only `found` lines (then
 * `offset` is 0).
 */
export async function tailStart(f: LogFile, end: number, n: number): Promise<{ offset: number; found: number }> {
  if (n <= 0 || end <= 0) return { offset: end, found: 0 };
  const block = Buffer.allocUnsafe(LOG_BLOCK);
  let found = 0;
  let lineEnd = end - 1; // the "\n" that ends the line being looked at
  let pos = lineEnd; // [0, pos) is still to scan
  while (pos > 0) {
    const len = Math.min(LOG_BLOCK, pos);
    const from = pos - len;
    const { bytesRead } = await f.read(block, 0, len, from);
    // Shorter than asked: the file was truncated under the reader; what is left is new.
    if (bytesRead < len) return { offset: lineEnd + 1, found };
    const view = block.subarray(0, len);
    for (let i = view.lastIndexOf(10); i >= 0; i = i > 0 ? view.lastIndexOf(10, i - 1) : -1) {
      const nl = from + i;
      if (lineEnd - nl > 1 && ++found === n) return { offset: nl + 1, found };
      lineEnd = nl;
    }
    pos = from;
  }
  if (lineEnd > 0 && ++found === n) return { offset: 0, found };
  return { offset: 0, found };
}

/**
 * The offset just after the newest non-empty line of [0, end) (`end` just after a "\n") for
 * which `match` is true, reading backwards block by block; null when no line matches. Lines
 * longer than MAX_LOG_LINE do not match (they are not assembled).
 */
export async function afterLastMatch(f: LogFile, end: number, match: (line: string) => boolean): Promise<number | null> {
  if (end <= 0) return null;
  const block = Buffer.allocUnsafe(LOG_BLOCK);
  // The line being looked at ends at the "\n" at lineEnd; carry holds its bytes found in
  // later blocks (it began in an earlier one).
  let lineEnd = end - 1;
  let carry: Buffer[] = [];
  let carryLen = 0;
  let overlong = false;
  const test = (view: Buffer, a: number, b: number): boolean => {
    if (overlong || (b <= a && carryLen === 0)) return false;
    const text = carryLen > 0 ? Buffer.concat([view.subarray(a, b), ...carry]).toString('utf8') : view.toString('utf8', a, b);
    return match(text);
  };
  let pos = lineEnd;
  while (pos > 0) {
    const len = Math.min(LOG_BLOCK, pos);
    const from = pos - len;
    const { bytesRead } = await f.read(block, 0, len, from);
    if (bytesRead < len) return null; // truncated under the reader: nothing to skip
    const view = block.subarray(0, len);
    let right = len;
    for (let i = view.lastIndexOf(10); i >= 0; i = i > 0 ? view.lastIndexOf(10, i - 1) : -1) {
      if (test(view, i + 1, right)) return lineEnd + 1;
      carry = [];
      carryLen = 0;
      overlong = false;
      lineEnd = from + i;
      right = i;
    }
    if (!overlong && right > 0) {
      if (carryLen + right > MAX_LOG_LINE) {
        overlong = true;
        carry = [];
        carryLen = 0;
      } else {
        // Copied: the block is reused for the next read.
        carry.unshift(Buffer.from(view.subarray(0, right)));
        carryLen += right;
      }
    }
    pos = from;
  }
  return test(block, 0, 0) ? lineEnd + 1 : null;
}
