/**
 * conmon writes the container's output in the k8s-file format (`TIME STREAM F|P MSG`).
 * The LogPump converts it, in the daemon, into Docker's json-file in the container's
 * directory (with max-size/max-file rotation) and remembers how far it got in a position
 * file, so that a daemon restart catches up on what the container wrote meanwhile without
 * losing or (except for the last batch before a crash) repeating lines. While the container
 * runs, the k8s-file is rotated through conmon's log-reopen control message so that it does
 * not grow without bound. No process per container: one fs.watch per running container.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { JsonFileWriter, formatJsonLogLine, toJsonLogTime, type LogStream } from '@berth/core';

export interface K8sLine {
  time: string;
  stream: LogStream;
  partial: boolean;
  msg: string;
}

/** Parse one k8s-file line (without its "\n"); null if it is not one. */
export function parseK8sLine(line: string): K8sLine | null {
  const a = line.indexOf(' ');
  if (a < 0) return null;
  const b = line.indexOf(' ', a + 1);
  if (b < 0) return null;
  const stream = line.slice(a + 1, b);
  if (stream !== 'stdout' && stream !== 'stderr') return null;
  const c = line.indexOf(' ', b + 1);
  const tag = c < 0 ? line.slice(b + 1) : line.slice(b + 1, c);
  if (tag !== 'F' && tag !== 'P') return null;
  let time: string;
  try {
    time = toJsonLogTime(line.slice(0, a));
  } catch {
    return null;
  }
  return { time, stream, partial: tag === 'P', msg: c < 0 ? '' : line.slice(c + 1) };
}

/** The json-file line for a k8s-file line: a full line gets its "\n" back. */
export function k8sToJsonLine(k: K8sLine): string {
  return formatJsonLogLine({ stream: k.stream, line: k.partial ? k.msg : `${k.msg}\n`, time: k.time });
}

/** Bytes converted per event-loop turn while following (the final drain is unbounded). */
const PUMP_BUDGET = 4 * 1024 * 1024;

interface Position {
  /** Which file the offset is in: the current k8s-file or the one being rotated away. */
  file: 'cur' | 'old';
  offset: number;
}

export interface LogPumpOptions {
  /** conmon's k8s-file. */
  source: string;
  /** Docker json-file log (RuntimeCreateOptions.log.path). */
  target: string;
  maxSize?: number;
  maxFile?: number;
  /** conmon's ctl FIFO, for log reopen; without it the source is not rotated. */
  ctlPath?: string;
  /** Rotate the source once this many bytes have been converted (default 8 MiB). */
  rotateAt?: number;
  onError?: (err: unknown) => void;
}

/** What the backend needs of a pump (a container whose log path is unknown gets nullPump()). */
export interface Pump {
  start(): void;
  stop(): void;
  detach(): void;
  removeFiles(): void;
}

/** A pump that converts nothing: a rebuilt record without the monitor's log path. */
export function nullPump(): Pump {
  const nothing = (): void => {};
  return { start: nothing, stop: nothing, detach: nothing, removeFiles: nothing };
}

export class LogPump implements Pump {
  private readonly posFile: string;
  private readonly oldFile: string;
  private pos: Position;
  private writer: JsonFileWriter | null = null;
  private watcher: fs.FSWatcher | null = null;
  private scheduled = false;
  private stopped = false;
  private readonly buf = Buffer.allocUnsafe(256 * 1024);

  constructor(private readonly opts: LogPumpOptions) {
    this.posFile = `${opts.source}.pos`;
    this.oldFile = `${opts.source}.old`;
    this.pos = this.loadPos();
  }

  private loadPos(): Position {
    try {
      const p = JSON.parse(fs.readFileSync(this.posFile, 'utf8')) as Partial<Position>;
      if ((p.file === 'cur' || p.file === 'old') && typeof p.offset === 'number' && p.offset >= 0) {
        return { file: p.file, offset: p.offset };
      }
    } catch {
      /* first run */
    }
    return { file: fs.existsSync(this.oldFile) ? 'old' : 'cur', offset: 0 };
  }

  private savePos(): void {
    const tmp = `${this.posFile}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.pos));
    fs.renameSync(tmp, this.posFile);
  }

  private out(): JsonFileWriter {
    if (!this.writer) {
      fs.mkdirSync(path.dirname(this.opts.target), { recursive: true });
      this.writer = new JsonFileWriter(this.opts.target, { maxSize: this.opts.maxSize, maxFile: this.opts.maxFile });
    }
    return this.writer;
  }

  /** Set when a bounded conversion stopped before the end of its file. */
  private more = false;

  /**
   * Convert complete lines of `file` from `offset`; returns the new offset. Reads at most
   * `budget` bytes (the rest is for the next round, so that a chatty container does not hold
   * the daemon's event loop).
   */
  private convert(file: string, offset: number, budget = Infinity): number {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return offset;
      throw err;
    }
    try {
      const start = offset;
      let pos = offset;
      let carry: Buffer | null = null;
      for (;;) {
        if (pos - start >= budget) {
          this.more = true;
          break;
        }
        const n = fs.readSync(fd, this.buf, 0, Math.min(this.buf.length, budget - (pos - start)), pos);
        if (n === 0) break;
        pos += n;
        const data: Buffer = carry ? Buffer.concat([carry, this.buf.subarray(0, n)]) : this.buf.subarray(0, n);
        const last = data.lastIndexOf(10);
        if (last < 0) {
          carry = Buffer.from(data);
          continue;
        }
        const chunk = data.subarray(0, last).toString('utf8');
        let out = '';
        for (const line of chunk.split('\n')) {
          if (!line) continue;
          const k = parseK8sLine(line);
          if (k) out += k8sToJsonLine(k);
        }
        if (out) this.out().writeRaw(Buffer.from(out, 'utf8'));
        carry = last + 1 < data.length ? Buffer.from(data.subarray(last + 1)) : null;
        offset = pos - (carry ? carry.length : 0);
      }
      return offset;
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Convert what conmon has written so far (complete lines). Synchronous. `budget` bounds
   * the bytes read from the current file; the watcher reschedules until caught up.
   */
  pump(budget = Infinity): void {
    this.more = false;
    if (this.pos.file === 'old') {
      const off = this.convert(this.oldFile, this.pos.offset);
      // conmon has reopened once the source path exists again: the old file is complete.
      if (fs.existsSync(this.opts.source) || !fs.existsSync(this.oldFile)) {
        this.convert(this.oldFile, off);
        fs.rmSync(this.oldFile, { force: true });
        this.pos = { file: 'cur', offset: 0 };
      } else {
        this.pos = { file: 'old', offset: off };
        this.savePos();
        return;
      }
    }
    const before = this.pos.offset;
    const off = this.convert(this.opts.source, this.pos.offset, budget);
    if (off !== before || !fs.existsSync(this.posFile)) {
      this.pos = { file: 'cur', offset: off };
      this.savePos();
    }
    if (!this.stopped && this.opts.ctlPath && off >= (this.opts.rotateAt ?? 8 * 1024 * 1024)) this.rotateSource();
  }

  /** Move the k8s-file aside and ask conmon to reopen it; the pump drains the old one. */
  private rotateSource(): void {
    const ctl = this.opts.ctlPath;
    if (!ctl) return;
    let fd: number;
    try {
      fd = fs.openSync(ctl, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    } catch {
      return; // conmon gone (ENXIO: no reader): nothing more will be written
    }
    try {
      fs.renameSync(this.opts.source, this.oldFile);
      this.pos = { file: 'old', offset: this.pos.offset };
      this.savePos();
      fs.writeSync(fd, '2 0 0\n');
    } catch (err) {
      this.opts.onError?.(err);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Follow the source: convert as soon as conmon writes. */
  start(): void {
    if (this.watcher || this.stopped) return;
    const dir = path.dirname(this.opts.source);
    const base = path.basename(this.opts.source);
    try {
      this.watcher = fs.watch(dir, (_ev, name) => {
        if (name && !name.startsWith(base)) return;
        this.schedule();
      });
      this.watcher.on('error', (err) => this.opts.onError?.(err));
    } catch (err) {
      this.opts.onError?.(err);
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.stopped) return;
      try {
        this.pump(PUMP_BUDGET);
        if (this.more) this.schedule();
      } catch (err) {
        this.opts.onError?.(err);
      }
    });
  }

  /** Final conversion and release (the container has exited or is being removed). */
  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = null;
    try {
      this.pump();
    } catch (err) {
      this.opts.onError?.(err);
    }
    this.writer?.close();
    this.writer = null;
  }

  /** Stop watching without the final conversion (daemon shutdown; a restart catches up). */
  detach(): void {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = null;
    this.writer?.close();
    this.writer = null;
  }

  /** Remove the intermediate files (container removed). */
  removeFiles(): void {
    for (const f of [this.opts.source, this.oldFile, this.posFile, `${this.posFile}.tmp`]) fs.rmSync(f, { force: true });
  }
}
