/**
 * The stdio of containerd tasks: named pipes (FIFOs) the backend makes in the container's
 * directory under its exec root, whose paths it gives containerd; containerd's shim opens the
 * other ends. The shim keeps a pipe open for reading itself, so a container's output waits in
 * the pipe (its buffer, then the writer blocks) while no berthd reads it, and a restarted
 * berthd opens the same FIFOs again.
 *
 * - FifoReader: the read end, non-blocking under libuv (a net.Socket on the fd) plus a
 *   "keeper" write end of our own, so that the reader sees no end of file before the shim has
 *   opened its end; `release()` drops the keeper once the process has exited, and the reader
 *   then ends when the shim has written everything and closed its end.
 * - LogSink: a container's stdout/stderr into its json-file log (core's JsonFileWriter), one
 *   entry per line, a line longer than 16 KiB split into partial entries as dockerd does, a
 *   line without its newline written at the end of the stream.
 * - openFifoWriter: the write end of the stdin FIFO; forwardStdin: a client's input into it.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { promisify } from 'node:util';
import { JsonFileWriter, SystemError, formatRfc3339Nano, nowNanos, type AttachSession, type LogStream } from '@berth/core';

const execFileP = promisify(execFile);

/** Make named pipes (0600), all in one `mkfifo` (Node has no mkfifo of its own). */
export async function makeFifos(paths: string[]): Promise<void> {
  if (paths.length === 0) return;
  try {
    await execFileP('mkfifo', ['-m', '600', ...paths]);
  } catch (err) {
    throw new SystemError(`mkfifo ${paths.join(' ')}: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`, { cause: err });
  }
}

export class FifoReader {
  readonly socket: net.Socket;
  /** Resolves when the read end has ended (or was closed). */
  readonly ended: Promise<void>;
  private keeper: number;

  private constructor(readonly path: string, fd: number, keeper: number) {
    this.keeper = keeper;
    this.socket = new net.Socket({ fd, readable: true, writable: false });
    this.ended = new Promise<void>((resolve) => {
      this.socket.once('end', () => resolve());
      this.socket.once('close', () => resolve());
    });
    this.socket.on('error', () => {
      /* a FIFO read error ends the stream; 'close' follows */
    });
  }

  /** Open the read end of an existing FIFO (never blocks), and a keeper write end. */
  static open(fifo: string): FifoReader {
    const fd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    let keeper: number;
    try {
      // A reader exists (ours), so a non-blocking open for writing succeeds.
      keeper = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return new FifoReader(fifo, fd, keeper);
  }

  /** The writer is done (its process exited): end of file once its end is closed and the pipe is drained. */
  release(): void {
    if (this.keeper < 0) return;
    fs.closeSync(this.keeper);
    this.keeper = -1;
  }

  /** Wait (at most `ms`) for the end after `release()`; true when the stream ended by itself. */
  async drained(ms: number): Promise<boolean> {
    this.release();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    const done = await Promise.race([this.ended.then(() => true), timedOut]);
    clearTimeout(timer);
    return done;
  }

  /** Stop reading now; the FIFO itself stays (a restarted daemon opens it again). */
  close(): void {
    this.release();
    this.socket.destroy();
  }
}

/** The write end of a FIFO (the container's stdin), opened read-write so that it never blocks. */
export function openFifoWriter(fifo: string): net.Socket {
  const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  const sock = new net.Socket({ fd, readable: false, writable: true });
  sock.on('error', () => {
    /* the reader went away: input is dropped */
  });
  return sock;
}

/**
 * An attach session's input written to the container's stdin FIFO (`sink`), until the input
 * ends or the session detaches; then `ended()` (which may end the container's input). No
 * input or no stdin: a session that is over at once.
 */
export function forwardStdin(input: NodeJS.ReadableStream | null, sink: net.Socket | null, ended: () => void): AttachSession {
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  if (!input || !sink) {
    resolveDone();
    return { detach: () => undefined, done };
  }
  let over = false;
  const onData = (d: Buffer | string): void => {
    sink.write(d);
  };
  const finish = (): void => {
    if (over) return;
    over = true;
    input.removeListener('data', onData);
    input.removeListener('end', finish);
    input.removeListener('close', finish);
    resolveDone();
    ended();
  };
  input.on('data', onData);
  input.on('end', finish);
  input.on('close', finish);
  return { detach: finish, done };
}

/** dockerd's line buffer: a longer line is logged as partial entries of this size. */
export const MAX_LOG_LINE = 16 * 1024;

export interface LogSinkOptions {
  maxSize?: number;
  maxFile?: number;
  /** A failed write of the json-file (the entries are dropped and this says so once per failure streak). */
  onError?: (err: unknown) => void;
  /** Time of an entry (RFC 3339 with nanoseconds); default: now. */
  now?: () => string;
}

/** A container's output into its json-file log, line by line. */
export class LogSink {
  private writer: JsonFileWriter | null;
  private readonly pending: Record<LogStream, Buffer> = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };
  private failing = false;
  private readonly now: () => string;

  constructor(
    readonly path: string,
    private readonly opts: LogSinkOptions = {},
  ) {
    this.writer = new JsonFileWriter(path, { maxSize: opts.maxSize, maxFile: opts.maxFile });
    this.now = opts.now ?? (() => formatRfc3339Nano(nowNanos()));
  }

  /** Read a FIFO into this log as `stream` until it ends. */
  follow(reader: FifoReader, stream: LogStream): void {
    reader.socket.on('data', (chunk: Buffer) => this.write(stream, chunk));
    void reader.ended.then(() => this.flush(stream));
  }

  /** Bytes of one stream: each complete line is an entry; the rest waits for its newline. */
  write(stream: LogStream, chunk: Buffer): void {
    let buf = this.pending[stream].length ? Buffer.concat([this.pending[stream], chunk]) : chunk;
    const time = this.now();
    for (;;) {
      const nl = buf.indexOf(10);
      if (nl >= 0 && nl < MAX_LOG_LINE) {
        this.entry(stream, buf.subarray(0, nl + 1), time);
        buf = buf.subarray(nl + 1);
      } else if (buf.length >= MAX_LOG_LINE) {
        this.entry(stream, buf.subarray(0, MAX_LOG_LINE), time);
        buf = buf.subarray(MAX_LOG_LINE);
      } else break;
    }
    this.pending[stream] = Buffer.from(buf);
  }

  /** End of a stream: a last line without its newline is written as it is. */
  flush(stream: LogStream): void {
    const rest = this.pending[stream];
    this.pending[stream] = Buffer.alloc(0);
    if (rest.length) this.entry(stream, rest, this.now());
  }

  private entry(stream: LogStream, line: Buffer, time: string): void {
    if (!this.writer) return;
    try {
      this.writer.write({ stream, line, time });
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.opts.onError?.(err);
      this.failing = true;
    }
  }

  /** Flush both streams and close the file. */
  close(): void {
    this.flush('stdout');
    this.flush('stderr');
    this.writer?.close();
    this.writer = null;
  }
}
