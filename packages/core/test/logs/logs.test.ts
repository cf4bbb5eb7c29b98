import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  formatJsonLogLine,
  formatLogTime,
  JsonFileWriter,
  parseJsonLogLine,
  parseLogTime,
  readLogs,
  toJsonLogTime,
  toNanos,
  type LogMessage,
  type ReadLogsOptions,
} from '../../src/logs/index.js';

let dir: string;
let log: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-logs-'));
  log = path.join(dir, 'c-json.log');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const t = (s: number, ns = 0): string => formatLogTime(BigInt(s) * 1_000_000_000n + BigInt(ns));

async function collect(opts: ReadLogsOptions = {}): Promise<string[]> {
  const out: string[] = [];
  for await (const m of readLogs(log, opts)) out.push(`${m.stream}:${m.line.toString()}`);
  return out;
}

describe('log time', () => {
  it('parses conmon offsets and formats json-file UTC with trimmed nanoseconds', () => {
    expect(toJsonLogTime('2026-11-28T07:33:10.011004470+00:00')).toBe('2026-11-28T07:33:10.01100447Z');
    expect(toJsonLogTime('2026-11-28T09:33:10.5+02:00')).toBe('2026-11-28T07:33:10.5Z');
    expect(toJsonLogTime('2026-11-28T07:33:10Z')).toBe('2026-11-28T07:33:10Z');
    expect(formatLogTime(parseLogTime('2026-11-28T07:33:10.5Z'), true)).toBe('2026-11-28T07:33:10.500000000Z');
    expect(() => parseLogTime('yesterday')).toThrow(/invalid RFC 3339/);
  });
  it('reads Docker API since/until forms', () => {
    expect(toNanos('1700000000.000000001')).toBe(1_700_000_000_000_000_001n);
    expect(toNanos(1700000000)).toBe(1_700_000_000_000_000_000n);
    expect(toNanos('2023-11-14T22:13:20Z')).toBe(1_700_000_000_000_000_000n);
    expect(toNanos(new Date(1700000000123))).toBe(1_700_000_000_123_000_000n);
  });
});

describe('json-file lines', () => {
  it('round-trips Docker json-file entries', () => {
    const line = formatJsonLogLine({ stream: 'stderr', line: Buffer.from('a "q"\n'), time: '2026-01-01T00:00:00.1Z' });
    expect(line).toBe('{"log":"a \\"q\\"\\n","stream":"stderr","time":"2026-01-01T00:00:00.1Z"}\n');
    expect(parseJsonLogLine(line)).toEqual({ stream: 'stderr', line: 'a "q"\n', time: '2026-01-01T00:00:00.1Z' });
    expect(parseJsonLogLine('{"log":1}')).toBeNull();
    expect(parseJsonLogLine('garbage')).toBeNull();
  });
});

describe('JsonFileWriter rotation', () => {
  it('rotates at max-size keeping max-file files, oldest dropped', async () => {
    const w = new JsonFileWriter(log, { maxSize: 100, maxFile: 3 });
    for (let i = 0; i < 20; i++) w.write({ stream: 'stdout', line: `line ${i}\n`, time: t(1000 + i) });
    w.close();
    expect(fs.existsSync(`${log}.1`)).toBe(true);
    expect(fs.existsSync(`${log}.2`)).toBe(true);
    expect(fs.existsSync(`${log}.3`)).toBe(false);
    for (const f of [log, `${log}.1`, `${log}.2`]) {
      // A file is rotated once it has reached max-size, so it holds at most one entry beyond it.
      expect(fs.statSync(f).size).toBeLessThan(100 + 80);
    }
    const lines = await collect();
    // The newest entries survive, in order, without gaps.
    const nums = lines.map((l) => Number(/line (\d+)/.exec(l)![1]));
    expect(nums[nums.length - 1]).toBe(19);
    expect(nums).toEqual(nums.map((_, i) => nums[0] + i));
    expect(nums[0]).toBeGreaterThan(0);
  });
  it('max-file 1 truncates in place', () => {
    const w = new JsonFileWriter(log, { maxSize: 60, maxFile: 1 });
    for (let i = 0; i < 5; i++) w.write({ stream: 'stdout', line: `line ${i}\n`, time: t(1000 + i) });
    w.close();
    expect(fs.existsSync(`${log}.1`)).toBe(false);
    expect(fs.readFileSync(log, 'utf8')).toContain('line 4');
    expect(fs.readFileSync(log, 'utf8')).not.toContain('line 0');
  });
});

describe('readLogs', () => {
  function writeSample(): void {
    const w = new JsonFileWriter(log, { maxSize: 120, maxFile: 5 });
    w.write({ stream: 'stdout', line: 'one\n', time: t(100) });
    w.write({ stream: 'stderr', line: 'two\n', time: t(200) });
    w.write({ stream: 'stdout', line: 'thr', time: t(300) });
    w.write({ stream: 'stdout', line: 'ee\n', time: t(300, 5) });
    w.write({ stream: 'stderr', line: 'four\n', time: t(400) });
    w.close();
  }
  it('reads all rotated files in order, partial lines kept as they are', async () => {
    writeSample();
    expect(fs.existsSync(`${log}.1`)).toBe(true);
    expect(await collect()).toEqual(['stdout:one\n', 'stderr:two\n', 'stdout:thr', 'stdout:ee\n', 'stderr:four\n']);
  });
  it('filters streams, since, until and tail like dockerd', async () => {
    writeSample();
    expect(await collect({ stderr: false })).toEqual(['stdout:one\n', 'stdout:thr', 'stdout:ee\n']);
    expect(await collect({ since: 200 })).toEqual(['stderr:two\n', 'stdout:thr', 'stdout:ee\n', 'stderr:four\n']);
    expect(await collect({ until: '300.000000001' })).toEqual(['stdout:one\n', 'stderr:two\n', 'stdout:thr']);
    expect(await collect({ tail: 2 })).toEqual(['stdout:ee\n', 'stderr:four\n']);
    expect(await collect({ tail: 0 })).toEqual([]);
    expect(await collect({ tail: 3, stdout: false })).toEqual(['stderr:four\n']);
  });
  it('prefixes timestamps with nine fraction digits', async () => {
    writeSample();
    const lines = await collect({ tail: 1, timestamps: true });
    expect(lines).toEqual([`stderr:${formatLogTime(400n * 1_000_000_000n, true)} four\n`]);
    expect(lines[0]).toContain('1970-01-01T00:06:40.000000000Z four');
  });
  it('skips malformed and incomplete lines', async () => {
    fs.writeFileSync(
      log,
      `${formatJsonLogLine({ stream: 'stdout', line: 'ok\n', time: t(1) })}not json\n{"log":"half`,
    );
    expect(await collect()).toEqual(['stdout:ok\n']);
  });
  it('returns nothing for a missing log', async () => {
    expect(await collect()).toEqual([]);
  });
  it('follows new entries across rotation and stops on abort', async () => {
    const w = new JsonFileWriter(log, { maxSize: 200, maxFile: 3 });
    w.write({ stream: 'stdout', line: 'before\n', time: t(1) });
    const ac = new AbortController();
    const got: LogMessage[] = [];
    const reading = (async () => {
      for await (const m of readLogs(log, { follow: true, signal: ac.signal, pollMs: 50 })) {
        got.push(m);
        if (got.length === 31) ac.abort();
      }
    })();
    for (let i = 0; i < 30; i++) {
      w.write({ stream: i % 2 ? 'stderr' : 'stdout', line: `n${i}\n`, time: t(2 + i) });
      if (i % 5 === 0) await new Promise((r) => setTimeout(r, 20));
    }
    await reading;
    w.close();
    expect(fs.existsSync(`${log}.1`)).toBe(true);
    expect(got.map((m) => m.line.toString())).toEqual(['before\n', ...Array.from({ length: 30 }, (_, i) => `n${i}\n`)]);
  });
  it.each([{}, { tail: 0 }, { tail: 5 }])('follows a log that appears after the reader started, from its first line (%o)', async (extra) => {
    const ac = new AbortController();
    const got: string[] = [];
    const reading = (async () => {
      for await (const m of readLogs(log, { follow: true, signal: ac.signal, pollMs: 50, ...extra })) {
        got.push(m.line.toString());
        if (got.length === 3) ac.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 30));
    const w = new JsonFileWriter(log, {});
    for (let i = 0; i < 3; i++) w.write({ stream: 'stdout', line: `first${i}\n`, time: t(1 + i) });
    await reading;
    w.close();
    expect(got).toEqual(['first0\n', 'first1\n', 'first2\n']);
  });
  it('follow ends at until and on abort while idle', async () => {
    const w = new JsonFileWriter(log);
    w.write({ stream: 'stdout', line: 'a\n', time: t(1) });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const start = Date.now();
    const got: string[] = [];
    for await (const m of readLogs(log, { follow: true, signal: ac.signal })) got.push(m.line.toString());
    expect(got).toEqual(['a\n']);
    expect(Date.now() - start).toBeLessThan(1000);
    w.write({ stream: 'stdout', line: 'late\n', time: t(10) });
    w.close();
    const got2: string[] = [];
    for await (const m of readLogs(log, { follow: true, until: 5 })) got2.push(m.line.toString());
    expect(got2).toEqual(['a\n']);
  });
});

describe('readLogs follow with drain', () => {
  // The writer's last batch and the drain signal come in the same tick (as the OCI backend
  // converts the last output and then reports the exit), possibly while a read is in flight:
  // the follow must deliver every line and then end by itself, without the abort signal.
  it.each([
    { name: 'no rotation', maxSize: undefined, rounds: 40 },
    { name: 'rotating', maxSize: 4096, rounds: 40 },
  ])('delivers everything written before the drain and then ends ($name)', async ({ maxSize, rounds }) => {
    for (let round = 0; round < rounds; round++) {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir);
      const w = new JsonFileWriter(log, { ...(maxSize ? { maxSize, maxFile: 50 } : {}) });
      const drain = new AbortController();
      const got: string[] = [];
      const reading = (async () => {
        for await (const m of readLogs(log, { follow: true, drain: drain.signal, pollMs: 10_000 })) got.push(m.line.toString());
      })();
      let n = 0;
      const bursts = 1 + (round % 7);
      for (let b = 0; b < bursts; b++) {
        for (let i = 0; i < 50; i++) w.write({ stream: 'stdout', line: `l${n++}\n`, time: t(1, n) });
        await new Promise((r) => (b % 2 ? setImmediate(r) : setTimeout(r, round % 3)));
      }
      for (let i = 0; i < 300; i++) w.write({ stream: 'stdout', line: `l${n++}\n`, time: t(1, n) });
      drain.abort();
      await reading;
      w.close();
      expect(got.length).toBe(n);
      expect(got[n - 1]).toBe(`l${n - 1}\n`);
    }
  });
  it('ends at once when drained and no log was ever written', async () => {
    const drain = new AbortController();
    const reading = collect({ follow: true, drain: drain.signal, pollMs: 10_000 });
    await new Promise((r) => setTimeout(r, 20));
    drain.abort();
    expect(await reading).toEqual([]);
  });
  it('an idle follow wakes up on the drain and reads what came last', async () => {
    const w = new JsonFileWriter(log);
    w.write({ stream: 'stdout', line: 'first\n', time: t(1) });
    const drain = new AbortController();
    const reading = collect({ follow: true, drain: drain.signal, pollMs: 10_000 });
    await new Promise((r) => setTimeout(r, 30));
    w.write({ stream: 'stderr', line: 'last\n', time: t(2) });
    drain.abort();
    expect(await reading).toEqual(['stdout:first\n', 'stderr:last\n']);
    w.close();
  });
});

describe('JsonFileWriter batches', () => {
  it('checks rotation before every line of a batch', () => {
    const w = new JsonFileWriter(log, { maxSize: 150, maxFile: 10 });
    const batch = Array.from({ length: 12 }, (_, i) => formatJsonLogLine({ stream: 'stdout', line: `b${i}\n`, time: t(i) })).join('');
    w.writeRaw(Buffer.from(batch));
    w.close();
    const files = fs.readdirSync(dir).filter((f) => f.startsWith('c-json.log'));
    expect(files.length).toBeGreaterThan(3);
    for (const f of files) expect(fs.statSync(path.join(dir, f)).size).toBeLessThan(150 + 60);
  });
});

describe('readLogs tail from the end', () => {
  it('takes the last lines across chunk boundaries and rotated files, skipping an unfinished line', async () => {
    const w = new JsonFileWriter(log, { maxSize: 200_000, maxFile: 5 });
    for (let i = 0; i < 6000; i++) w.write({ stream: i % 2 ? 'stderr' : 'stdout', line: `${'é'.repeat(i % 7)}n${i}\n`, time: t(1000 + i) });
    w.close();
    expect(fs.existsSync(`${log}.1`)).toBe(true);
    fs.appendFileSync(log, '{"log":"unfinished');
    const last3 = await collect({ tail: 3 });
    expect(last3).toEqual([`stderr:${'é'.repeat(5997 % 7)}n5997\n`, `stdout:${'é'.repeat(5998 % 7)}n5998\n`, `stderr:${'é'.repeat(5999 % 7)}n5999\n`]);
    const many = await collect({ tail: 4500 });
    expect(many).toHaveLength(4500);
    expect(many[0]).toBe(`stdout:${'é'.repeat(1500 % 7)}n1500\n`);
    const all = await collect({ tail: 100_000 });
    expect(all.length).toBeLessThanOrEqual(6000);
    expect(all[all.length - 1]).toContain('n5999');
  });
  it('follows on from the tail', async () => {
    const w = new JsonFileWriter(log);
    for (let i = 0; i < 5; i++) w.write({ stream: 'stdout', line: `a${i}\n`, time: t(i) });
    const ac = new AbortController();
    const got: string[] = [];
    const reading = (async () => {
      for await (const m of readLogs(log, { tail: 2, follow: true, signal: ac.signal, pollMs: 50 })) {
        got.push(m.line.toString());
        if (got.length === 4) ac.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    w.write({ stream: 'stdout', line: 'b0\n', time: t(10) });
    w.write({ stream: 'stdout', line: 'b1\n', time: t(11) });
    await reading;
    w.close();
    expect(got).toEqual(['a3\n', 'a4\n', 'b0\n', 'b1\n']);
  });
});
