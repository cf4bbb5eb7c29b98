/**
 * The log pump around a full disk (issue 10 item 10, second half): what conmon wrote reaches the
 * json-file once space is back — whole lines, in order, none twice — or is reported as lost with
 * its size when the container is removed first. Two ways to fill the disk: the `enospc` action
 * of the `logs.pumpWrite` failpoint (anywhere), and a real 16 KiB tmpfs that fills midway through
 * a write (as root; skipped otherwise).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readLogs, setFailpointsForTest } from '@berth/core';
import { LogPump } from '../src/log-pump.js';

const line = (i: number): string => `2026-11-28T07:33:10.${String(i).padStart(3, '0')}+00:00 stdout F line ${i} ${'x'.repeat(60)}\n`;
const lines = (from: number, to: number): string => Array.from({ length: to - from }, (_, i) => line(from + i)).join('');
const expected = (n: number): string[] => Array.from({ length: n }, (_, i) => `line ${i} ${'x'.repeat(60)}\n`);

async function readAll(target: string): Promise<string[]> {
  const out: string[] = [];
  for await (const m of readLogs(target)) out.push(m.line.toString());
  return out;
}

/** Every file of a json-file log, oldest first, joined (rotation keeps whole lines per file). */
function rawLines(target: string): string[] {
  const files = fs.readdirSync(path.dirname(target)).filter((f) => f.startsWith(path.basename(target)) && !f.endsWith('.k8s') && !f.includes('.pos'));
  const ordered = files.sort((a, b) => (Number(b.split('.').pop()) || 0) - (Number(a.split('.').pop()) || 0));
  return ordered.flatMap((f) => fs.readFileSync(path.join(path.dirname(target), f), 'utf8').split('\n').filter(Boolean));
}

/** `got` is a run of consecutive lines of the expected output (starting at `start` if given). */
function expectRun(got: string[], start?: number): void {
  const all = expected(N);
  const from = start ?? all.indexOf(got[0]!);
  expect(got).toEqual(all.slice(from, from + got.length));
}

const N = 100;

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 300 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
}

describe('LogPump on a full disk (enospc failpoint)', () => {
  let dir: string;
  let src: string;
  let out: string;
  let notices: string[];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-pump-full-'));
    src = path.join(dir, 'c-json.log.k8s');
    out = path.join(dir, 'c-json.log');
    notices = [];
  });
  afterEach(() => {
    setFailpointsForTest(undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps its place while writes fail, retries by itself, and then converts everything once', async () => {
    fs.writeFileSync(src, lines(0, 5));
    const p = new LogPump({ source: src, target: out, retryMs: 10, notice: (m) => notices.push(m) });
    p.pump();
    expect(await readAll(out)).toEqual(expected(5));

    setFailpointsForTest('logs.pumpWrite=enospc');
    fs.appendFileSync(src, lines(5, 10));
    p.pump();
    expect(p.paused).toBe(true);
    expect(p.pendingBytes()).toBe(lines(5, 10).length);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/ENOSPC.*paused.*bytes of output wait/);
    await new Promise((r) => setTimeout(r, 60)); // several retries, all failing, no new notice
    expect(notices).toHaveLength(1);

    // The container exits while the disk is still full: the final drain waits for space too.
    fs.appendFileSync(src, lines(10, 12));
    p.stop();
    expect(p.paused).toBe(true);
    setFailpointsForTest(undefined);
    await until(() => !p.paused);
    expect(await readAll(out)).toEqual(expected(12));
    expect(notices[1]).toMatch(/resumed, nothing lost/);
    expect(p.lostBytes).toBe(0);
  });

  it('reports what could not be converted before the container was removed, with its size', () => {
    fs.writeFileSync(src, lines(0, 3));
    const p = new LogPump({ source: src, target: out, retryMs: 10_000, notice: (m) => notices.push(m) });
    setFailpointsForTest('logs.pumpWrite=enospc');
    p.stop();
    p.retire();
    expect(p.lostBytes).toBe(lines(0, 3).length);
    expect(notices[notices.length - 1]).toMatch(new RegExp(`^${lines(0, 3).length} bytes of container output .* lost`));
    expect(p.paused).toBe(false); // no retry timer left behind
  });
});

const notRoot = process.getuid?.() !== 0;

describe.skipIf(notRoot)(`LogPump on a real full tmpfs (root)${notRoot ? ' (skipped: mounting a tmpfs needs root)' : ''}`, () => {
  let dir: string;
  let mnt: string;
  let src: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-pump-tmpfs-'));
    mnt = path.join(dir, 'logs');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', mnt]);
    src = path.join(dir, 'c-json.log.k8s'); // conmon's file elsewhere: only the json-file's disk fills
  });
  afterEach(() => {
    try {
      execFileSync('umount', [mnt], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', mnt]); // a writer fd still open (a failed test): detach
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Fill the tmpfs, leaving about `free` bytes; returns the filler's path. */
  function fill(free: number): string {
    const filler = path.join(mnt, 'filler');
    const fd = fs.openSync(filler, 'w');
    const chunk = Buffer.alloc(1024, 0x61);
    try {
      for (;;) fs.writeSync(fd, chunk);
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    } finally {
      fs.closeSync(fd);
    }
    fs.truncateSync(filler, Math.max(0, fs.statSync(filler).size - free));
    return filler;
  }

  for (const rotate of [{}, { maxSize: 3000, maxFile: 3 }]) {
    it(`a write that fills the disk midway leaves whole lines only, and resumes once space is back ${JSON.stringify(rotate)}`, async () => {
      const out = path.join(mnt, 'c-json.log');
      const notices: string[] = [];
      const p = new LogPump({ source: src, target: out, retryMs: 10, notice: (m) => notices.push(m), ...rotate });
      fs.writeFileSync(src, lines(0, 10));
      p.pump();
      const filler = fill(1500);
      fs.appendFileSync(src, lines(10, N)); // ~12 KB of json: runs out of space partway
      p.pump();
      // What is in the json-file now is whole lines, each once, in order.
      const partial = rawLines(out).map((l) => (JSON.parse(l) as { log: string }).log);
      expect(partial.length).toBeGreaterThan(0);
      expectRun(partial, rotate.maxSize ? undefined : 0);
      expect(p.paused).toBe(true);
      fs.rmSync(filler);
      await until(() => !p.paused);
      p.stop();
      const all = rawLines(out).map((l) => (JSON.parse(l) as { log: string }).log);
      // Without rotation everything is there; with it the newest lines are, in order.
      if (rotate.maxSize) expect(all).toEqual(expected(N).slice(N - all.length));
      else expect(all).toEqual(expected(N));
      expect(notices.some((n) => /resumed, nothing lost/.test(n))).toBe(true);
    });
  }
});
