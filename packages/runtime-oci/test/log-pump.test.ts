import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readLogs } from '@berth/core';
import { LogPump, k8sToJsonLine, parseK8sLine } from '../src/log-pump.js';

describe('k8s-file lines', () => {
  it('parses conmon lines, full and partial, empty messages and spaces kept', () => {
    expect(parseK8sLine('2026-11-28T07:33:10.011004471+00:00 stdout F hello world')).toEqual({
      time: '2026-11-28T07:33:10.011004471Z',
      stream: 'stdout',
      partial: false,
      msg: 'hello world',
    });
    expect(parseK8sLine('2026-11-28T08:33:10.5+01:00 stderr P  two  spaces ')).toEqual({
      time: '2026-11-28T07:33:10.5Z',
      stream: 'stderr',
      partial: true,
      msg: ' two  spaces ',
    });
    expect(parseK8sLine('2026-11-28T07:33:10Z stdout F ')?.msg).toBe('');
    expect(parseK8sLine('2026-11-28T07:33:10Z stdout F')?.msg).toBe('');
    expect(parseK8sLine('2026-11-28T07:33:10Z stdin F x')).toBeNull();
    expect(parseK8sLine('garbage')).toBeNull();
    expect(parseK8sLine('notatime stdout F x')).toBeNull();
  });
  it('turns them into json-file lines, restoring the newline of full lines only', () => {
    const full = parseK8sLine('2026-11-28T07:33:10.1+00:00 stdout F a "b"')!;
    expect(k8sToJsonLine(full)).toBe('{"log":"a \\"b\\"\\n","stream":"stdout","time":"2026-11-28T07:33:10.1Z"}\n');
    const part = parseK8sLine('2026-11-28T07:33:10.1+00:00 stderr P abc')!;
    expect(k8sToJsonLine(part)).toBe('{"log":"abc","stream":"stderr","time":"2026-11-28T07:33:10.1Z"}\n');
  });
});

describe('LogPump', () => {
  let dir: string;
  let src: string;
  let out: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-pump-'));
    src = path.join(dir, 'c-json.log.k8s');
    out = path.join(dir, 'c-json.log');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const line = (i: number, stream = 'stdout', tag = 'F'): string => `2026-11-28T07:33:${String(10 + (i % 50)).padStart(2, '0')}.${i}+00:00 ${stream} ${tag} line ${i}\n`;
  async function read(): Promise<string[]> {
    const r: string[] = [];
    for await (const m of readLogs(out)) r.push(`${m.stream}:${m.line.toString()}`);
    return r;
  }

  it('converts complete lines only, and a restarted pump neither loses nor repeats', async () => {
    fs.writeFileSync(src, line(1) + line(2, 'stderr') + '2026-11-28T07:33:12.0+00:00 stdout P par');
    const p1 = new LogPump({ source: src, target: out });
    p1.pump();
    expect(await read()).toEqual(['stdout:line 1\n', 'stderr:line 2\n']);
    p1.detach(); // daemon killed: no final pump
    fs.appendFileSync(src, `tial\n${line(3)}`);
    const p2 = new LogPump({ source: src, target: out });
    p2.pump();
    p2.stop();
    // The P line stays a partial line in json-file (no newline added).
    expect(await read()).toEqual(['stdout:line 1\n', 'stderr:line 2\n', 'stdout:partial', 'stdout:line 3\n']);
    for (const f of p2.retire()) fs.rmSync(f, { force: true });
    expect(fs.readdirSync(dir).sort()).toEqual(['c-json.log']);
  });

  it('appends the converted lines to criLog in the CRI format, reopened after kubelet renames it', async () => {
    const cri = path.join(dir, 'pods', 'c', '0.log');
    fs.writeFileSync(src, line(1) + line(2, 'stderr', 'P') + '2026-11-28T07:33:12.0+00:00 stdout F not yet whole');
    const p = new LogPump({ source: src, target: out, criLog: cri });
    p.pump();
    // Whole lines only, as conmon wrote them (its k8s-file format is the CRI log format).
    expect(fs.readFileSync(cri, 'utf8')).toBe(line(1) + line(2, 'stderr', 'P'));
    fs.renameSync(cri, `${cri}.1`); // kubelet's rotation (then ReopenContainerLog)
    fs.appendFileSync(src, `\n${line(3)}`);
    p.pump();
    p.stop();
    expect(fs.readFileSync(cri, 'utf8')).toBe(`2026-11-28T07:33:12.0+00:00 stdout F not yet whole\n${line(3)}`);
    expect(await read()).toEqual(['stdout:line 1\n', 'stderr:line 2', 'stdout:not yet whole\n', 'stdout:line 3\n']);
  });

  it('follows the source as it is written', async () => {
    const p = new LogPump({ source: src, target: out });
    p.start();
    fs.writeFileSync(src, line(1));
    for (let i = 0; i < 50 && !fs.existsSync(out); i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
    expect(await read()).toEqual(['stdout:line 1\n']);
    fs.appendFileSync(src, line(2));
    await new Promise((r) => setTimeout(r, 100));
    p.stop();
    expect(await read()).toEqual(['stdout:line 1\n', 'stdout:line 2\n']);
  });

  it('applies max-size/max-file to the json-file', async () => {
    fs.writeFileSync(src, Array.from({ length: 100 }, (_, i) => line(i)).join(''));
    const p = new LogPump({ source: src, target: out, maxSize: 500, maxFile: 2 });
    p.stop();
    expect(fs.existsSync(`${out}.1`)).toBe(true);
    expect(fs.existsSync(`${out}.2`)).toBe(false);
    const got = await read();
    expect(got[got.length - 1]).toBe('stdout:line 99\n');
    expect(got.length).toBeLessThan(100);
  });

  it('rotates the source through the ctl fifo (log reopen) without losing lines', async () => {
    const ctl = path.join(dir, 'ctl');
    execFileSync('mkfifo', [ctl]);
    const ctlFd = fs.openSync(ctl, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK); // stands in for conmon
    try {
      fs.writeFileSync(src, line(1) + line(2));
      const p = new LogPump({ source: src, target: out, ctlPath: ctl, rotateAt: 10 });
      p.pump();
      // The pump moved the source aside and asked for a reopen.
      expect(fs.existsSync(`${src}.old`)).toBe(true);
      expect(fs.existsSync(src)).toBe(false);
      const buf = Buffer.alloc(64);
      expect(buf.subarray(0, fs.readSync(ctlFd, buf)).toString()).toBe('2 0 0\n');
      // conmon wrote a little more to the old file before reopening, then a new file.
      fs.appendFileSync(`${src}.old`, line(3));
      p.pump(); // source not back yet: keeps reading the old one
      fs.writeFileSync(src, line(4));
      p.pump();
      // The old file was drained and removed; the new one, past rotateAt again, went aside in turn.
      expect(buf.subarray(0, fs.readSync(ctlFd, buf)).toString()).toBe('2 0 0\n');
      p.stop();
      expect(await read()).toEqual(['stdout:line 1\n', 'stdout:line 2\n', 'stdout:line 3\n', 'stdout:line 4\n']);
    } finally {
      fs.closeSync(ctlFd);
    }
  });

  it('pumps of many running containers hold no read buffer each, and their conversions do not mix', async () => {
    // before: 256 KiB a pump for as long as its container ran (issue 18)
    const pumps: LogPump[] = [];
    const before = process.memoryUsage().arrayBuffers;
    for (let c = 0; c < 40; c++) {
      fs.writeFileSync(`${src}.${c}`, line(c) + line(c + 1000, 'stderr'));
      const p = new LogPump({ source: `${src}.${c}`, target: `${out}.${c}` });
      p.pump();
      pumps.push(p);
    }
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(40 * 64 * 1024);
    // rounds of different pumps one after the other: each json-file holds its own lines only
    for (let c = 0; c < 40; c++) fs.appendFileSync(`${src}.${c}`, line(c + 2000));
    for (const p of pumps.reverse()) p.pump();
    for (const p of pumps) p.stop();
    for (let c = 0; c < 40; c += 13) {
      const r: string[] = [];
      for await (const m of readLogs(`${out}.${c}`)) r.push(`${m.stream}:${m.line.toString()}`);
      expect(r).toEqual([`stdout:line ${c}\n`, `stderr:line ${c + 1000}\n`, `stdout:line ${c + 2000}\n`]);
    }
  });
});

describe('LogPump budget', () => {
  it('converts a bounded amount per round and everything on the final drain', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-pump-'));
    try {
      const src = path.join(dir, 'c-json.log.k8s');
      const out = path.join(dir, 'c-json.log');
      const lines = Array.from({ length: 2000 }, (_, i) => `2026-11-28T07:33:10.${i}+00:00 stdout F ${'x'.repeat(100)} ${i}\n`);
      fs.writeFileSync(src, lines.join(''));
      const p = new LogPump({ source: src, target: out });
      p.pump(64 * 1024);
      const partial = fs.readFileSync(out, 'utf8').trim().split('\n').length;
      expect(partial).toBeGreaterThan(100);
      expect(partial).toBeLessThan(2000);
      p.stop();
      const all = fs.readFileSync(out, 'utf8').trim().split('\n');
      expect(all).toHaveLength(2000);
      expect(all[1999]).toContain(' 1999\\n');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

});
