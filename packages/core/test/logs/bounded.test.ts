/**
 * The json-file reader with bounded memory (issue 10 item 8): block-wise lines (partial lines
 * across blocks, lines longer than a block, CRLF, corrupt overlong lines), tail read
 * backwards across block and file boundaries, laziness (a block is read only when the
 * consumer asks), and rotation while a reader is part-way through the history.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatJsonLogLine, formatLogTime, JsonFileWriter, parseLogTime, readLogs, type ReadLogsOptions } from '../../src/logs/index.js';
import { LOG_BLOCK, MAX_LOG_LINE, afterLastMatch, lineBatches, logFileOf, tailStart, type LogFile } from '../../src/logs/lines.js';

let dir: string;
let log: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-logs-bounded-'));
  log = path.join(dir, 'c-json.log');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const t = (s: number): string => formatLogTime(BigInt(s) * 1_000_000_000n);
const entry = (i: number, text = `n${i}`): string => formatJsonLogLine({ stream: i % 2 ? 'stderr' : 'stdout', line: `${text}\n`, time: t(1000 + i) });

async function collect(opts: ReadLogsOptions = {}): Promise<string[]> {
  const out: string[] = [];
  for await (const m of readLogs(log, opts)) out.push(m.line.toString());
  return out;
}

/** A LogFile over a file that counts its reads. */
function counted(file: string): { f: LogFile; reads: () => number } {
  const f = logFileOf(fs.openSync(file, 'r'));
  let n = 0;
  return {
    f: { ...f, read: (...a) => (n++, f.read(...a)) },
    reads: () => n,
  };
}

async function allLines(f: LogFile, start = 0, end?: number): Promise<{ lines: string[]; next: number }> {
  const lines: string[] = [];
  let next = start;
  for await (const b of lineBatches(f, start, end)) {
    lines.push(...b.lines);
    next = b.next;
  }
  return { lines, next };
}

describe('lineBatches', () => {
  it('assembles lines cut by block boundaries and lines longer than a block, and leaves an unfinished line', async () => {
    const long = 'x'.repeat(LOG_BLOCK * 2 + 17);
    const parts = ['a', 'b'.repeat(LOG_BLOCK - 3), long, 'é'.repeat(LOG_BLOCK), 'z'];
    const text = parts.join('\n') + '\nunfinished';
    fs.writeFileSync(log, text);
    const c = counted(log);
    const r = await allLines(c.f);
    expect(r.lines).toEqual(parts);
    expect(r.next).toBe(Buffer.byteLength(text) - 'unfinished'.length);
    // Going on from `next` once the line is finished gives exactly that line.
    fs.appendFileSync(log, '-done\n');
    expect((await allLines(c.f, r.next)).lines).toEqual(['unfinished-done']);
    await c.f.close();
  });

  it('reads CRLF-terminated entries (the CR is JSON whitespace) and keeps CRLF inside messages', async () => {
    const crlf = entry(0).replace(/\n$/, '\r\n') + formatJsonLogLine({ stream: 'stdout', line: 'dos line\r\n', time: t(2000) });
    fs.writeFileSync(log, crlf);
    expect(await collect()).toEqual(['n0\n', 'dos line\r\n']);
  });

  it('skips a line longer than MAX_LOG_LINE (a corrupt file) without assembling it, and reads on after it', async () => {
    const fd = fs.openSync(log, 'w');
    fs.writeSync(fd, entry(0));
    fs.writeSync(fd, Buffer.alloc(MAX_LOG_LINE + 3 * LOG_BLOCK)); // NULs, as a crash can leave them
    fs.writeSync(fd, `\n${entry(1)}`);
    fs.closeSync(fd);
    expect(await collect()).toEqual(['n0\n', 'n1\n']);
  });

  it('reads a block only when the consumer asks for the next batch', async () => {
    fs.writeFileSync(log, Array.from({ length: 20_000 }, (_, i) => entry(i)).join(''));
    expect(fs.statSync(log).size).toBeGreaterThan(10 * LOG_BLOCK);
    const c = counted(log);
    const it = lineBatches(c.f, 0);
    const first = await it.next();
    expect(first.done).toBe(false);
    expect(c.reads()).toBe(1);
    await it.next();
    expect(c.reads()).toBe(2);
    await it.return(undefined);
    await c.f.close();
  });

  it('stops at `end` even when the file goes on', async () => {
    const head = entry(0) + entry(1);
    fs.writeFileSync(log, head + entry(2));
    const c = counted(log);
    const r = await allLines(c.f, 0, Buffer.byteLength(head));
    expect(r.lines).toHaveLength(2);
    expect(r.next).toBe(Buffer.byteLength(head));
    await c.f.close();
  });
});

describe('tailStart', () => {
  it('finds the start of the last n non-empty lines across blocks, counting lines longer than a block once', async () => {
    const lines = ['first', 'y'.repeat(LOG_BLOCK + 5), '', 'third', 'w'.repeat(3 * LOG_BLOCK), 'last'];
    const text = lines.join('\n') + '\n';
    fs.writeFileSync(log, text);
    const c = counted(log);
    const end = Buffer.byteLength(text);
    const offsetOf = (i: number): number => Buffer.byteLength(lines.slice(0, i).join('\n')) + (i > 0 ? 1 : 0);
    expect(await tailStart(c.f, end, 1)).toEqual({ offset: offsetOf(5), found: 1 });
    expect(await tailStart(c.f, end, 2)).toEqual({ offset: offsetOf(4), found: 2 });
    expect(await tailStart(c.f, end, 3)).toEqual({ offset: offsetOf(3), found: 3 });
    // The empty line is not counted.
    expect(await tailStart(c.f, end, 4)).toEqual({ offset: offsetOf(1), found: 4 });
    expect(await tailStart(c.f, end, 5)).toEqual({ offset: 0, found: 5 });
    expect(await tailStart(c.f, end, 9)).toEqual({ offset: 0, found: 5 });
    await c.f.close();
  });
});

describe('readLogs tail across files', () => {
  it('takes the last lines from several rotated files when the newest ones hold fewer', async () => {
    // Files of very different sizes: a big rotated file, a small one, and an almost empty current file.
    fs.writeFileSync(`${log}.2`, Array.from({ length: 3000 }, (_, i) => entry(i)).join(''));
    fs.writeFileSync(`${log}.1`, entry(3000) + entry(3001, 'z'.repeat(LOG_BLOCK * 2)) + entry(3002));
    fs.writeFileSync(log, entry(3003));
    const got = await collect({ tail: 6 });
    expect(got.map((l) => l.slice(0, 6))).toEqual(['n2998\n', 'n2999\n', 'n3000\n', 'zzzzzz', 'n3002\n', 'n3003\n']);
    expect(await collect({ tail: 1 })).toEqual(['n3003\n']);
    expect(await collect({ tail: 4 })).toHaveLength(4);
    expect(await collect({ tail: 5000 })).toHaveLength(3004);
  });

  it('takes the tail from the rotated files when the current file is empty', async () => {
    fs.writeFileSync(`${log}.1`, entry(0) + entry(1) + entry(2));
    fs.writeFileSync(log, '');
    expect(await collect({ tail: 2 })).toEqual(['n1\n', 'n2\n']);
  });

  it('combines tail with since and until as dockerd does (tail first)', async () => {
    fs.writeFileSync(`${log}.1`, Array.from({ length: 10 }, (_, i) => entry(i)).join(''));
    fs.writeFileSync(log, Array.from({ length: 10 }, (_, i) => entry(10 + i)).join(''));
    expect(await collect({ tail: 12, since: 1000 + 12 })).toEqual(['n12\n', 'n13\n', 'n14\n', 'n15\n', 'n16\n', 'n17\n', 'n18\n', 'n19\n']);
    expect(await collect({ tail: 12, until: 1000 + 10 })).toEqual(['n8\n', 'n9\n', 'n10\n']);
  });
});

describe('readLogs while the log rotates', () => {
  it('delivers every entry once, in order, when the writer rotates several times while a follow is part-way through the history', async () => {
    const w = new JsonFileWriter(log, { maxSize: 2 * LOG_BLOCK, maxFile: 200 });
    let n = 0;
    for (; n < 8000; n++) w.write({ stream: 'stdout', line: `n${n}\n`, time: t(n) });
    const files = fs.readdirSync(dir).length;
    expect(files).toBeGreaterThan(3);
    const drain = new AbortController();
    const got: string[] = [];
    for await (const m of readLogs(log, { follow: true, drain: drain.signal, pollMs: 10_000 })) {
      got.push(m.line.toString());
      // Part-way through the history: the writer goes on and rotates the files under the reader.
      if (got.length === 100) {
        for (; n < 16_000; n++) w.write({ stream: 'stdout', line: `n${n}\n`, time: t(n) });
        expect(fs.readdirSync(dir).length).toBeGreaterThan(files);
        drain.abort();
      }
    }
    w.close();
    expect(got).toHaveLength(16_000);
    expect(got.every((l, i) => l === `n${i}\n`)).toBe(true);
  });
});

describe('parseLogTime of consecutive entries', () => {
  it('gives the same nanoseconds for times of the second parsed last as a fresh parse, and refuses what is not RFC 3339', () => {
    const base = 1_700_000_000n * 1_000_000_000n;
    const second = '2023-11-14T22:13:20';
    expect(parseLogTime(`${second}Z`)).toBe(base);
    // Same second: every fraction length, trimmed zeros, no fraction.
    expect(parseLogTime(`${second}.5Z`)).toBe(base + 500_000_000n);
    expect(parseLogTime(`${second}.000000001Z`)).toBe(base + 1n);
    expect(parseLogTime(`${second}.123456789Z`)).toBe(base + 123_456_789n);
    expect(parseLogTime(`${second}.12Z`)).toBe(base + 120_000_000n);
    expect(parseLogTime(`${second}Z`)).toBe(base);
    // The same second in another form still goes through the full parse.
    expect(parseLogTime(`${second}.25+00:00`)).toBe(base + 250_000_000n);
    expect(parseLogTime(`${second}.25z`)).toBe(base + 250_000_000n);
    // Not RFC 3339, although it begins with the second parsed last.
    for (const bad of [`${second}.Z`, `${second}.1234567890Z`, `${second}.12a4Z`, `${second}Zjunk`, `${second}.5`, `${second}:00Z`]) {
      expect(() => parseLogTime(bad), bad).toThrow(/invalid RFC 3339/);
    }
    // Another second, then back.
    expect(parseLogTime('2023-11-14T22:13:21.5Z')).toBe(base + 1_500_000_000n);
    expect(parseLogTime(`${second}.5Z`)).toBe(base + 500_000_000n);
    expect(parseLogTime(' 2023-11-14T22:13:22Z')).toBe(base + 2_000_000_000n);
    expect(parseLogTime('2023-11-14T22:13:22.75Z')).toBe(base + 2_750_000_000n);
  });
});

describe('since without reading what is older', () => {
  it('afterLastMatch finds the newest matching line backwards, across blocks, and reads only as far as it', async () => {
    const long = 'L'.repeat(LOG_BLOCK * 2 + 3); // a matching line cut by two block boundaries
    const lines = ['old first', long, 'new a', '', 'new b'];
    const text = lines.join('\n') + '\n';
    fs.writeFileSync(log, text);
    const c = counted(log);
    const end = Buffer.byteLength(text);
    const after = (i: number): number => Buffer.byteLength(lines.slice(0, i + 1).join('\n')) + 1;
    expect(await afterLastMatch(c.f, end, (l) => l.startsWith('L'))).toBe(after(1));
    expect(await afterLastMatch(c.f, end, (l) => l === 'old first')).toBe(after(0));
    expect(await afterLastMatch(c.f, end, (l) => l === 'new b')).toBe(end);
    expect(await afterLastMatch(c.f, end, () => false)).toBeNull();
    expect(await afterLastMatch(c.f, end, (l) => l === '')).toBeNull(); // empty lines are not lines
    await c.f.close();

    // A big file: a match near the end costs a block, not the file.
    fs.writeFileSync(log, Array.from({ length: 50_000 }, (_, i) => entry(i)).join(''));
    const big = counted(log);
    const size = fs.statSync(log).size;
    expect(size).toBeGreaterThan(30 * LOG_BLOCK);
    expect(await afterLastMatch(big.f, size, (l) => l.includes('"n49990\\n"'))).toBe(size - Array.from({ length: 9 }, (_, i) => entry(49_991 + i)).join('').length);
    expect(big.reads()).toBe(1);
    await big.f.close();
  });

  it('does not assemble an overlong line to test it', async () => {
    const fd = fs.openSync(log, 'w');
    fs.writeSync(fd, 'match\n');
    fs.writeSync(fd, Buffer.alloc(MAX_LOG_LINE + 2 * LOG_BLOCK, 0x41));
    fs.writeSync(fd, '\nlast\n');
    fs.closeSync(fd);
    const c = counted(log);
    const seen: number[] = [];
    const at = await afterLastMatch(c.f, fs.statSync(log).size, (l) => (seen.push(l.length), l === 'match'));
    expect(at).toBe(6);
    expect(seen).toEqual([4, 5]); // "last", then "match": the overlong line was never handed over
    await c.f.close();
  });

  it('readLogs since starts after the newest older entry, across rotated files, with a second of slack for reordering', async () => {
    fs.writeFileSync(`${log}.1`, [entry(0), entry(1), entry(2)].join(''));
    // In the current file an entry of 1005 comes before one of 1004.9 (the other stream).
    const at = (s: number, ns: number, text: string): string => formatJsonLogLine({ stream: 'stdout', line: `${text}\n`, time: formatLogTime(BigInt(s) * 1_000_000_000n + BigInt(ns)) });
    fs.writeFileSync(log, [entry(3), at(1005, 0, 'five'), at(1004, 900_000_000, 'four.9'), entry(6)].join(''));
    expect(await collect({ since: 1005 })).toEqual(['five\n', 'n6\n']);
    expect(await collect({ since: 1001 })).toEqual(['n1\n', 'n2\n', 'n3\n', 'five\n', 'four.9\n', 'n6\n']);
    expect(await collect({ since: 999 })).toHaveLength(7);
    expect(await collect({ since: 2000 })).toEqual([]);
    expect(await collect({ since: 1002, stdout: false })).toEqual(['n3\n']);
  });
});
