/**
 * Docker's json-file log format: one JSON object per line, `{"log","stream","time"}`.
 * `log` holds the bytes of the line including its trailing "\n"; a line without "\n" is a
 * partial line whose rest follows in the next entry (Docker splits long lines the same way).
 * Rotation as dockerd's json-file driver: when the current file has reached `maxSize`, it
 * becomes `path.1`, `path.1` becomes `path.2`, … up to `maxFile` files in total
 * (`maxFile` 1 = truncate in place).
 */
import * as fs from 'node:fs';

export type LogStream = 'stdout' | 'stderr';

export interface LogEntry {
  stream: LogStream;
  /** The line's bytes; a trailing "\n" marks a complete line. */
  line: Buffer | string;
  /** RFC 3339 UTC with nanoseconds (json-file's `time`). */
  time: string;
}

export interface RotateOptions {
  /** Bytes; 0 or undefined = unlimited. */
  maxSize?: number;
  /** Number of files including the current one; default 1. */
  maxFile?: number;
}

/** One json-file line (with its trailing "\n"). */
export function formatJsonLogLine(entry: LogEntry): string {
  const log = typeof entry.line === 'string' ? entry.line : entry.line.toString('utf8');
  return `${JSON.stringify({ log, stream: entry.stream, time: entry.time })}\n`;
}

/** Parse one json-file line (without or with "\n"); null when it is not a log entry. */
export function parseJsonLogLine(text: string): LogEntry | null {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    return null;
  }
  if (!obj || typeof obj !== 'object') return null;
  const { log, stream, time } = obj as { log?: unknown; stream?: unknown; time?: unknown };
  if (typeof log !== 'string' || typeof time !== 'string') return null;
  if (stream !== 'stdout' && stream !== 'stderr') return null;
  return { stream, line: log, time };
}

/** Paths of a rotated log, oldest first: path.N … path.1, path. Only existing files. */
export function rotatedLogFiles(path: string, maxFile = 64): string[] {
  const out: string[] = [];
  for (let i = maxFile; i >= 1; i--) {
    if (fs.existsSync(`${path}.${i}`)) out.push(`${path}.${i}`);
  }
  if (fs.existsSync(path)) out.push(path);
  return out;
}

/**
 * Appends entries to a json-file log with rotation. Synchronous writes keep the order of
 * entries and make each line land whole (one write per line). Not a stream: the caller
 * batches (the runtime backend converts monitor output in chunks).
 */
export class JsonFileWriter {
  private fd: number;
  private size: number;
  private readonly maxSize: number;
  private readonly maxFile: number;

  constructor(
    readonly path: string,
    opts: RotateOptions = {},
  ) {
    this.maxSize = opts.maxSize && opts.maxSize > 0 ? opts.maxSize : 0;
    this.maxFile = opts.maxFile && opts.maxFile > 0 ? opts.maxFile : 1;
    this.fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o640);
    this.size = fs.fstatSync(this.fd).size;
  }

  write(entry: LogEntry): void {
    this.writeRaw(Buffer.from(formatJsonLogLine(entry), 'utf8'));
  }

  /**
   * Write pre-formatted json-file lines (each complete, "\n"-terminated). With max-size the
   * batch is split so that the rotation check happens before every line, as dockerd does.
   */
  writeRaw(buf: Buffer): void {
    if (!this.maxSize) {
      this.writeAll(buf);
      return;
    }
    let start = 0;
    while (start < buf.length) {
      if (this.size >= this.maxSize) this.rotate();
      let end = start;
      let projected = this.size;
      while (end < buf.length && projected < this.maxSize) {
        const nl = buf.indexOf(10, end);
        const next = nl < 0 ? buf.length : nl + 1;
        projected += next - end;
        end = next;
      }
      this.writeAll(buf.subarray(start, end));
      start = end;
    }
  }

  private writeAll(buf: Buffer): void {
    let off = 0;
    while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off);
    this.size += buf.length;
  }

  private rotate(): void {
    if (this.maxFile <= 1) {
      fs.ftruncateSync(this.fd, 0);
      this.size = 0;
      return;
    }
    fs.closeSync(this.fd);
    fs.rmSync(`${this.path}.${this.maxFile - 1}`, { force: true });
    for (let i = this.maxFile - 2; i >= 1; i--) {
      try {
        fs.renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    fs.renameSync(this.path, `${this.path}.1`);
    this.fd = fs.openSync(this.path, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o640);
    this.size = 0;
  }

  close(): void {
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }
}
