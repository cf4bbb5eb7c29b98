/**
 * conmon writes the container's output in the k8s-file format (`TIME STREAM F|P MSG`).
 * The LogPump converts it, in the daemon, into Docker's json-file in the container's
 * directory (with max-size/max-file rotation) and remembers how far it got in a position
 * file, so that a daemon restart catches up on what the container wrote meanwhile without
 * losing or (except for the last batch before a crash) repeating lines. While the container
 * runs, the k8s-file is rotated through conmon's log-reopen control message so that it does
 * not grow without bound. No process per container: one fs.watch per running container.
 *
 * A full disk (or any failing write of the json-file) loses nothing that conmon wrote: a batch
 * is written whole or rolled back (the json-file truncated to where it was, so no half line and
 * no line twice), the position stays at the last line written, and the pump retries on a timer
 * — also after the container exited — until the write goes through, saying once that it paused
 * and once that it resumed. Only output that is still unconverted when the container is removed
 * is lost, and then it is reported with its size.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { JsonFileWriter, atomicWriteFileSync, declareFailpoint, failpoint, formatJsonLogLine, toJsonLogTime, type LogStream } from '@berth/core';
import { EXEC_ROOT_WRITE } from './record.js';

const FP_WRITE = declareFailpoint('logs.pumpWrite', "runtime-oci log pump: before it writes converted lines to the container's json-file");

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
  /**
   * RuntimeCreateOptions.log.criPath: the converted lines are also appended here as conmon wrote
   * them (the k8s-file format is the CRI log format), after the json-file write succeeded; the
   * file is opened per append, so kubelet's rename + ReopenContainerLog needs nothing more.
   */
  criLog?: string;
  maxSize?: number;
  maxFile?: number;
  /** conmon's ctl FIFO, for log reopen; without it the source is not rotated. */
  ctlPath?: string;
  /** Rotate the source once this many bytes have been converted (default 8 MiB). */
  rotateAt?: number;
  /** First retry after a failed json-file write (doubling up to 5 s; default 1 s). */
  retryMs?: number;
  onError?: (err: unknown) => void;
  /** Where the pause/resume/loss notices go (default: onError). */
  notice?: (msg: string) => void;
}

/**
 * The read buffer of every pump. A conversion is synchronous from its first read to its last
 * use of the bytes read, so one buffer serves all running containers; a buffer per pump held
 * 256 KiB for as long as its container ran (issue 18: 2.5 MiB of berthd's memory with 10
 * running, 250 MiB with 1,000). `inUse` guards a conversion started from inside another (an
 * onError callback that pumps): that one reads into a buffer of its own.
 */
const READ_BUFFER = { buf: Buffer.allocUnsafe(256 * 1024), inUse: false };

/** Thrown out of convert() when the json-file cannot be written; `offset` is how far it got. */
class WriteFailed extends Error {
  constructor(
    readonly offset: number,
    override readonly cause: unknown,
  ) {
    super(`writing ${String((cause as NodeJS.ErrnoException).code ?? cause)}`);
  }
}

/** What the backend needs of a pump (a container whose log path is unknown gets nullPump()). */
export interface Pump {
  start(): void;
  stop(): void;
  detach(): void;
  /** The container is removed: its intermediate files, for the caller to remove (with the rest of its files, in one job). */
  retire(): string[];
}

/** A pump that converts nothing: a rebuilt record without the monitor's log path. */
export function nullPump(): Pump {
  const nothing = (): void => {};
  return { start: nothing, stop: nothing, detach: nothing, retire: () => [] };
}

export class LogPump implements Pump {
  private readonly posFile: string;
  private readonly oldFile: string;
  private pos: Position;
  private writer: JsonFileWriter | null = null;
  private watcher: fs.FSWatcher | null = null;
  private scheduled = false;
  private stopped = false;
  /** Set while json-file writes fail: when the episode began and with what. */
  private failing: { code: string; retryMs: number; timer: NodeJS.Timeout | null } | null = null;
  /** Bytes of conmon's output reported lost (never converted). */
  lostBytes = 0;

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
    try {
      atomicWriteFileSync(this.posFile, JSON.stringify(this.pos), EXEC_ROOT_WRITE);
    } catch (err) {
      // A full disk: the position in memory is right; a restart would repeat the last lines.
      if (!this.failing) this.opts.onError?.(err);
    }
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
  private criFailed = false;

  /** Append lines to the CRI log (best effort: a failure is reported once and the json-file goes on). */
  private appendCri(lines: Buffer): void {
    const file = this.opts.criLog!;
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.appendFileSync(file, lines);
      this.criFailed = false;
    } catch (err) {
      if (!this.criFailed) this.opts.onError?.(err);
      this.criFailed = true;
    }
  }

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
    const shared = !READ_BUFFER.inUse;
    const buf = shared ? READ_BUFFER.buf : Buffer.allocUnsafe(READ_BUFFER.buf.length);
    if (shared) READ_BUFFER.inUse = true;
    try {
      const start = offset;
      let pos = offset;
      let carry: Buffer | null = null;
      for (;;) {
        if (pos - start >= budget) {
          this.more = true;
          break;
        }
        const n = fs.readSync(fd, buf, 0, Math.min(buf.length, budget - (pos - start)), pos);
        if (n === 0) break;
        pos += n;
        const data: Buffer = carry ? Buffer.concat([carry, buf.subarray(0, n)]) : buf.subarray(0, n);
        const last = data.lastIndexOf(10);
        if (last < 0) {
          carry = Buffer.from(data);
          continue;
        }
        // The source offset just after each converted line, for a write that fails midway.
        const base = pos - data.length;
        const outs: string[] = [];
        const ends: number[] = [];
        for (let ls = 0; ls <= last; ) {
          const nl = data.indexOf(10, ls);
          const line = data.subarray(ls, nl).toString('utf8');
          ls = nl + 1;
          const k = line ? parseK8sLine(line) : null;
          if (!k) continue;
          outs.push(k8sToJsonLine(k));
          ends.push(base + ls);
        }
        carry = last + 1 < data.length ? Buffer.from(data.subarray(last + 1)) : null;
        const reached = this.writeLines(outs, ends);
        if (reached !== null) throw new WriteFailed(reached.offset ?? offset, reached.err);
        if (this.opts.criLog) this.appendCri(data.subarray(0, last + 1));
        offset = pos - (carry ? carry.length : 0);
      }
      return offset;
    } finally {
      if (shared) READ_BUFFER.inUse = false;
      fs.closeSync(fd);
    }
  }

  /**
   * Write converted lines whole: one batch when it cannot cross a max-size rotation, else line
   * by line. A failed write is rolled back (the json-file truncated to its size before the
   * failed line or batch) and the writer dropped; returns null when all went through, else the
   * source offset after the last line written (undefined: none) and the error.
   */
  private writeLines(outs: string[], ends: number[]): { offset: number | undefined; err: unknown } | null {
    if (!outs.length) return null;
    const target = this.opts.target;
    const max = this.opts.maxSize && this.opts.maxSize > 0 ? this.opts.maxSize : 0;
    const sizeNow = (): number => {
      try {
        return fs.statSync(target).size;
      } catch {
        return 0;
      }
    };
    const writeOne = (buf: Buffer, before: number): unknown => {
      try {
        failpoint(FP_WRITE);
        this.out().writeRaw(buf);
        return null;
      } catch (err) {
        // The writer rotates before a line once the file reached max-size: then the current
        // file holds only this write.
        const rotated = max > 0 && before >= max;
        this.writer?.close();
        this.writer = null;
        try {
          if (fs.existsSync(target)) fs.truncateSync(target, rotated ? 0 : before);
        } catch (e) {
          this.opts.onError?.(e);
        }
        return err;
      }
    };
    const before = sizeNow();
    const batch = Buffer.from(outs.join(''), 'utf8');
    if (!max || before + batch.length < max) {
      const err = writeOne(batch, before);
      return err === null ? null : { offset: undefined, err };
    }
    let done: number | undefined;
    for (let i = 0; i < outs.length; i++) {
      const err = writeOne(Buffer.from(outs[i], 'utf8'), sizeNow());
      if (err !== null) return { offset: done, err };
      done = ends[i];
    }
    return null;
  }

  /**
   * Convert what conmon has written so far (complete lines). Synchronous. `budget` bounds
   * the bytes read from the current file; the watcher reschedules until caught up.
   */
  pump(budget = Infinity): void {
    try {
      this.convertAll(budget);
    } catch (err) {
      if (!(err instanceof WriteFailed)) throw err;
      this.pause(err.cause);
      return;
    }
    if (this.failing) this.resume();
  }

  /** convert(), keeping the position of a write that failed midway. */
  private convertAt(file: Position['file'], p: string, offset: number, budget?: number): number {
    try {
      return this.convert(p, offset, budget);
    } catch (err) {
      if (err instanceof WriteFailed) {
        this.pos = { file, offset: err.offset };
        this.savePos();
      }
      throw err;
    }
  }

  private convertAll(budget: number): void {
    this.more = false;
    if (this.pos.file === 'old') {
      const off = this.convertAt('old', this.oldFile, this.pos.offset);
      // conmon has reopened once the source path exists again: the old file is complete.
      if (fs.existsSync(this.opts.source) || !fs.existsSync(this.oldFile)) {
        this.convertAt('old', this.oldFile, off);
        fs.rmSync(this.oldFile, { force: true });
        this.pos = { file: 'cur', offset: 0 };
      } else {
        this.pos = { file: 'old', offset: off };
        this.savePos();
        return;
      }
    }
    const before = this.pos.offset;
    const off = this.convertAt('cur', this.opts.source, this.pos.offset, budget);
    if (off !== before || !fs.existsSync(this.posFile)) {
      this.pos = { file: 'cur', offset: off };
      this.savePos();
    }
    if (!this.stopped && this.opts.ctlPath && off >= (this.opts.rotateAt ?? 8 * 1024 * 1024)) this.rotateSource();
  }

  private notice(msg: string): void {
    if (this.opts.notice) this.opts.notice(msg);
    else this.opts.onError?.(new Error(msg));
  }

  /** Bytes of conmon's output not converted yet. */
  pendingBytes(): number {
    const size = (f: string): number => {
      try {
        return fs.statSync(f).size;
      } catch {
        return 0;
      }
    };
    const cur = size(this.opts.source);
    return this.pos.file === 'old' ? Math.max(0, size(this.oldFile) - this.pos.offset) + cur : Math.max(0, cur - this.pos.offset);
  }

  /** A json-file write failed: keep the place, say so once, retry on a timer. */
  private pause(cause: unknown): void {
    const code = String((cause as NodeJS.ErrnoException).code ?? (cause as Error).message);
    if (!this.failing) {
      this.failing = { code, retryMs: this.opts.retryMs ?? 1000, timer: null };
      this.notice(
        `cannot write the json-file ${this.opts.target} (${code}): log conversion paused; ${this.pendingBytes()} bytes of output wait in ${this.opts.source} and are converted once writes succeed again`,
      );
    } else {
      this.failing.retryMs = Math.min(this.failing.retryMs * 2, 5000);
    }
    if (this.failing.timer) clearTimeout(this.failing.timer);
    this.failing.timer = setTimeout(() => this.retry(), this.failing.retryMs);
    this.failing.timer.unref();
  }

  private retry(): void {
    if (!this.failing) return;
    this.failing.timer = null;
    try {
      this.pump(this.stopped ? Infinity : PUMP_BUDGET);
    } catch (err) {
      this.opts.onError?.(err);
    }
    if (this.failing) return;
    if (this.stopped) {
      this.writer?.close();
      this.writer = null;
    } else if (this.more) {
      this.schedule();
    }
  }

  private resume(): void {
    if (!this.failing) return;
    if (this.failing.timer) clearTimeout(this.failing.timer);
    this.notice(`json-file ${this.opts.target} is writable again (after ${this.failing.code}): log conversion resumed, nothing lost`);
    this.failing = null;
  }

  /** True while json-file writes fail and output waits to be converted. */
  get paused(): boolean {
    return this.failing !== null;
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
    // While writes fail, only the retry timer tries again (not every write conmon makes).
    if (this.scheduled || this.stopped || this.failing) return;
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

  /**
   * Final conversion and release (the container has exited or is being removed). While the
   * json-file cannot be written, the retries go on after this and release when done.
   */
  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = null;
    try {
      this.pump();
    } catch (err) {
      this.opts.onError?.(err);
    }
    if (this.failing) return;
    this.writer?.close();
    this.writer = null;
  }

  private stopRetrying(): void {
    if (this.failing?.timer) clearTimeout(this.failing.timer);
    this.failing = null;
  }

  /** Stop watching without the final conversion (daemon shutdown; a restart catches up). */
  detach(): void {
    this.stopped = true;
    this.stopRetrying();
    this.watcher?.close();
    this.watcher = null;
    this.writer?.close();
    this.writer = null;
  }

  /**
   * The container is removed: the intermediate files, which the caller removes (the backend's
   * cleanup, one job with the container's other files). Output that could not be converted by
   * now is lost: reported with its size.
   */
  retire(): string[] {
    if (this.failing) {
      const n = this.pendingBytes();
      const code = this.failing.code;
      this.stopRetrying();
      this.writer?.close();
      this.writer = null;
      if (n > 0) {
        this.lostBytes += n;
        this.notice(`${n} bytes of container output were never written to the json-file ${this.opts.target} (${code}) and are lost: the container was removed`);
      }
    }
    return [this.opts.source, this.oldFile, this.posFile, `${this.posFile}.tmp`];
  }
}
