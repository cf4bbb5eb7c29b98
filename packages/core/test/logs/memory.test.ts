/**
 * Memory of `docker logs` on a big json-file (issue 10 item 8: a 150 MB log took the daemon
 * from 65 MB to 453 MB RSS). A child process reads a generated ~150 MB log (three rotated
 * files) through readLogs — all of it, a tail of half of it, and a follow that ends at the
 * end — and reports its peak RSS growth, which must stay far below the size of the log.
 * Memory, not time, is asserted.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseJsonLogLine } from '../../src/logs/index.js';

// The child runs the built module (Node 20 cannot import TypeScript); the suite builds first.
const built = new URL('../../dist/logs/reader.js', import.meta.url);
const sources = ['reader', 'lines'].map((m) => new URL(`../../src/logs/${m}.ts`, import.meta.url));
const skip = !fs.existsSync(built) ? 'packages/core is not built (pnpm build)' : '';

const FILES = 3;
const PER_FILE = 50 * 1024 * 1024;
const LIMIT = 64 * 1024 * 1024;

let dir: string;
let log: string;
let entries = 0;

beforeAll(() => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-logs-mem-'));
  log = path.join(dir, 'c-json.log');
  const pad = 'x'.repeat(90);
  for (let f = FILES - 1; f >= 0; f--) {
    const fd = fs.openSync(f ? `${log}.${f}` : log, 'w');
    let size = 0;
    while (size < PER_FILE) {
      const batch: string[] = [];
      for (let i = 0; i < 10_000; i++, entries++) {
        // json-file lines as formatJsonLogLine writes them; times 1 ns apart from 1700000000.
        batch.push(`{"log":"${entries} ${pad}\\n","stream":"${entries % 2 ? 'stderr' : 'stdout'}","time":"2023-11-14T22:13:20.${String(entries).padStart(9, '0')}Z"}\n`);
      }
      const buf = Buffer.from(batch.join(''));
      fs.writeSync(fd, buf);
      size += buf.length;
    }
    fs.closeSync(fd);
  }
  // The generated lines are json-file entries as the writer makes them.
  const head = Buffer.alloc(300);
  const fd = fs.openSync(`${log}.${FILES - 1}`, 'r');
  fs.readSync(fd, head, 0, head.length, 0);
  fs.closeSync(fd);
  expect(parseJsonLogLine(head.toString().split('\n')[0])).toEqual({ stream: 'stdout', line: `0 ${'x'.repeat(90)}\n`, time: '2023-11-14T22:13:20.000000000Z' });
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const child = `
  const { readLogs } = await import(process.env.READER);
  const log = process.env.LOG;
  const sample = () => process.memoryUsage().rss;
  globalThis.gc();
  const base = sample();
  const out = {};
  const drained = new AbortController();
  drained.abort();
  const phases = {
    all: {},
    tail: { tail: Number(process.env.TAIL) },
    follow: { follow: true, drain: drained.signal },
    filtered: { since: process.env.SINCE, stdout: false },
  };
  for (const [name, opts] of Object.entries(phases)) {
    let count = 0, bytes = 0, peak = sample(), first = '', last = '';
    for await (const m of readLogs(log, opts)) {
      if (!count) first = m.line.toString();
      last = m.line;
      count++;
      bytes += m.line.length;
      if (count % 2000 === 0) peak = Math.max(peak, sample());
    }
    out[name] = { count, bytes, growth: Math.max(peak, sample()) - base, first: first.split(' ')[0], last: last.toString().split(' ')[0] };
  }
  out.maxRssGrowth = process.resourceUsage().maxRSS * 1024 - base;
  console.log(JSON.stringify(out));
`;

describe('readLogs memory', () => {
  it.skipIf(!!skip)(`stays bounded on a ~150 MB log: all of it, a tail, a follow, a filter${skip ? ` (skipped: ${skip})` : ''}`, () => {
    for (const src of sources) expect(fs.statSync(built).mtimeMs, `packages/core/dist is older than ${src.pathname}: build it first`).toBeGreaterThanOrEqual(fs.statSync(src).mtimeMs);
    let total = 0;
    for (const f of fs.readdirSync(dir)) total += fs.statSync(path.join(dir, f)).size;
    expect(total).toBeGreaterThan(140 * 1024 * 1024);
    const half = Math.floor(entries / 2);
    const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', child], {
      encoding: 'utf8',
      env: { ...process.env, READER: built.pathname, LOG: log, TAIL: String(half), SINCE: String(1_700_000_000 + 0) + '.' + String(entries - 1000).padStart(9, '0') },
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, { count: number; growth: number; first: string; last: string }> & { maxRssGrowth: number };
    // Everything was read, in order.
    expect(out.all).toMatchObject({ count: entries, first: '0', last: String(entries - 1) });
    expect(out.follow).toMatchObject({ count: entries, first: '0', last: String(entries - 1) });
    expect(out.tail).toMatchObject({ count: half, first: String(entries - half), last: String(entries - 1) });
    // since the 1000th last entry, stderr only (odd numbers).
    expect(out.filtered).toMatchObject({ count: 500, first: String(entries - 999), last: String(entries - 1) });
    for (const phase of ['all', 'tail', 'follow', 'filtered']) {
      expect(out[phase].growth, `${phase}: RSS grew by ${out[phase].growth} bytes`).toBeLessThan(LIMIT);
    }
    expect(out.maxRssGrowth, `peak RSS grew by ${out.maxRssGrowth} bytes`).toBeLessThan(LIMIT);
  }, 300_000);
});
