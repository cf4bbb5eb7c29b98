/**
 * The containerd backend's stdio, without containerd: a FIFO read with a keeper does not end
 * before the writer's process is done (`release()`), and ends once it is and the pipe is
 * drained; the log sink writes Docker json-file entries line by line (dockerd's 16 KiB split,
 * a last line without its newline kept). No root needed.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { readLogs } from '@berth/core';
import { FifoReader, LogSink, MAX_LOG_LINE, makeFifos } from '../src/index.js';
import { forwardStdin, openFifoWriter } from '../src/stdio.js';

const dirs: string[] = [];
const readers: FifoReader[] = [];
afterEach(() => {
  for (const r of readers.splice(0)) r.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ctd-stdio-'));
  dirs.push(d);
  return d;
}
/** A writer process (as the shim is): writes `text` into the FIFO and exits. */
function writeAndExit(fifo: string, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn('sh', ['-c', 'printf "%s" "$1" > "$2"', 'sh', text, fifo], { stdio: 'ignore' });
    c.on('error', reject);
    c.on('exit', () => resolve());
  });
}
async function entries(file: string): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for await (const m of readLogs(file)) out.push([m.stream, m.line.toString()]);
  return out;
}

describe('FifoReader', () => {
  it('no end of file while released is not called, even between writers; all data, then the end after release', async () => {
    const fifo = path.join(tmp(), 'out');
    await makeFifos([fifo]);
    expect(fs.statSync(fifo).isFIFO()).toBe(true);
    expect(fs.statSync(fifo).mode & 0o777).toBe(0o600);
    const r = FifoReader.open(fifo);
    readers.push(r);
    let data = '';
    r.socket.on('data', (d: Buffer) => (data += d.toString()));
    let ended = false;
    void r.ended.then(() => (ended = true));
    await writeAndExit(fifo, 'one\n');
    await writeAndExit(fifo, 'two\n');
    await new Promise((res) => setTimeout(res, 100));
    expect(ended).toBe(false);
    expect(await r.drained(5000)).toBe(true);
    expect(data).toBe('one\ntwo\n');
  });

  it('drained() says false when a writer still holds its end', async () => {
    const fifo = path.join(tmp(), 'out');
    await makeFifos([fifo]);
    const r = FifoReader.open(fifo);
    readers.push(r);
    r.socket.resume();
    const holder = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    try {
      expect(await r.drained(200)).toBe(false);
    } finally {
      fs.closeSync(holder);
    }
    await r.ended;
  });

  it('makeFifos names the path it could not make', async () => {
    await expect(makeFifos([path.join(tmp(), 'missing-dir', 'out')])).rejects.toThrow(/missing-dir/);
  });
});

describe('LogSink', () => {
  it('one json-file entry per line and stream; a last line without newline is written at the end', async () => {
    const file = path.join(tmp(), 'c-json.log');
    const sink = new LogSink(file);
    sink.write('stdout', Buffer.from('hel'));
    sink.write('stderr', Buffer.from('oops\n'));
    sink.write('stdout', Buffer.from('lo\nwor'));
    sink.write('stdout', Buffer.from('ld\nno newline'));
    sink.close();
    expect(await entries(file)).toEqual([
      ['stderr', 'oops\n'],
      ['stdout', 'hello\n'],
      ['stdout', 'world\n'],
      ['stdout', 'no newline'],
    ]);
  });

  it('a line longer than 16 KiB becomes partial entries of 16 KiB, as dockerd splits it', async () => {
    const file = path.join(tmp(), 'c-json.log');
    const sink = new LogSink(file);
    sink.write('stdout', Buffer.from(`${'a'.repeat(MAX_LOG_LINE + 10)}\n`));
    sink.close();
    const got = await entries(file);
    expect(got.map(([, l]) => l.length)).toEqual([MAX_LOG_LINE, 11]);
    expect(got[1][1].endsWith('\n')).toBe(true);
  });

  it('follows a FIFO into the log until its end', async () => {
    const d = tmp();
    const fifo = path.join(d, 'out');
    execFileSync('mkfifo', [fifo]);
    const file = path.join(d, 'c-json.log');
    const sink = new LogSink(file);
    const r = FifoReader.open(fifo);
    readers.push(r);
    sink.follow(r, 'stdout');
    await writeAndExit(fifo, 'a\nb');
    await r.drained(5000);
    sink.close();
    expect(await entries(file)).toEqual([
      ['stdout', 'a\n'],
      ['stdout', 'b'],
    ]);
  });

  const noFull = fs.existsSync('/dev/full') ? null : 'this machine has no /dev/full';
  it.skipIf(noFull !== null)(`a failing write (a full disk: /dev/full) is reported once per streak and does not throw into the reader${noFull ? ` (skipped: ${noFull})` : ''}`, () => {
    const errors: unknown[] = [];
    const sink = new LogSink('/dev/full', { onError: (e) => errors.push(e) });
    sink.write('stdout', Buffer.from('x\ny\n'));
    sink.write('stderr', Buffer.from('z\n'));
    expect(errors).toHaveLength(1);
    expect((errors[0] as NodeJS.ErrnoException).code).toBe('ENOSPC');
    sink.close();
  });
});

describe('forwardStdin', () => {
  async function pair(): Promise<{ reader: FifoReader; writer: ReturnType<typeof openFifoWriter>; got: () => string }> {
    const fifo = path.join(tmp(), 'stdin');
    await makeFifos([fifo]);
    const reader = FifoReader.open(fifo);
    readers.push(reader);
    let data = '';
    reader.socket.on('data', (d: Buffer) => (data += d.toString()));
    return { reader, writer: openFifoWriter(fifo), got: () => data };
  }

  it('the input reaches the FIFO; its end ends the session once and tells the backend', async () => {
    const { writer, got } = await pair();
    const input = new PassThrough();
    let ended = 0;
    const s = forwardStdin(input, writer, () => ended++);
    input.write('one ');
    input.end('two');
    await s.done;
    s.detach();
    expect(ended).toBe(1);
    for (let i = 0; i < 50 && got() !== 'one two'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(got()).toBe('one two');
    writer.destroy();
  });

  it('a detach stops forwarding and tells the backend; no input or no stdin is a session over at once', async () => {
    const { writer, got } = await pair();
    const input = new PassThrough();
    let ended = 0;
    const s = forwardStdin(input, writer, () => ended++);
    s.detach();
    input.write('late');
    await new Promise((r) => setTimeout(r, 50));
    expect([ended, got()]).toEqual([1, '']);
    let none = 0;
    await forwardStdin(null, writer, () => none++).done;
    await forwardStdin(new PassThrough(), null, () => none++).done;
    expect(none).toBe(0);
    writer.destroy();
  });
});
