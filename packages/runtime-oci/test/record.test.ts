/**
 * The backend's per-container record (record.ts) and process liveness (monitor.ts), without
 * root: a corrupt or missing berth.json is rebuilt from what is on the host and never read as
 * "no container"; a half-made bundle stays "nothing"; processes are told apart by start time
 * and a zombie's exit status is read back.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXIT_CODE_UNKNOWN } from '@berth/core';
import { lostExitCode, procRef, stillRunning, zombieExitCode } from '../src/monitor.js';
import { loadMeta, type ContainerMeta } from '../src/record.js';
import { RuntimeRegistry } from '../src/registry.js';

describe('berth.json that cannot be read', () => {
  let root: string;
  let warnings: string[];
  const id = 'c0ffee';
  const ctx = () => ({ id, bundle: path.join(root, id), stateRoot: path.join(root, 'state'), registry: new RuntimeRegistry({ runc: { path: '/bin/true' }, crun: { path: '/bin/false', runtimeArgs: ['--systemd-cgroup'] } }, 'runc') });
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-record-'));
    fs.mkdirSync(path.join(root, id));
    fs.writeFileSync(path.join(root, id, 'config.json'), JSON.stringify({ process: { terminal: true } }));
    warnings = [];
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('a good record is read as it is', () => {
    const meta: ContainerMeta = { id, runtime: 'runc', runtimePath: '/bin/true', globalArgs: ['--root', 'x'], bundle: path.join(root, id), tty: false, openStdin: false, log: { path: '/l', maxSize: 5 }, k8sLog: '/l.k8s', created: 'now' };
    fs.writeFileSync(path.join(root, id, 'berth.json'), JSON.stringify(meta));
    expect(loadMeta(ctx(), (m) => warnings.push(m))).toEqual(meta);
    expect(warnings).toEqual([]);
  });

  it('a corrupt record of a container the runtime holds is rebuilt from its state dir and bundle, written back, the bad copy kept', () => {
    fs.writeFileSync(path.join(root, id, 'berth.json'), '{"id": "c0f');
    fs.mkdirSync(path.join(root, 'state', 'crun', id), { recursive: true });
    const meta = loadMeta(ctx(), (m) => warnings.push(m));
    expect(meta).toMatchObject({ id, runtime: 'crun', runtimePath: '/bin/false', globalArgs: ['--root', path.join(root, 'state', 'crun'), '--systemd-cgroup'], tty: true, k8sLog: '', log: { path: '' } });
    expect(meta?.rebuilt).toMatch(/corrupt.*rebuilt from the runtime state/);
    expect(warnings.join('\n')).toMatch(/c0ffee: berth.json corrupt/);
    expect(fs.readFileSync(path.join(root, id, 'berth.json.corrupt'), 'utf8')).toBe('{"id": "c0f');
    // Written back: the next read is a plain read.
    warnings = [];
    expect(loadMeta(ctx(), (m) => warnings.push(m))).toEqual(meta);
    expect(warnings).toEqual([]);
  });

  it('a record of another container is not taken for this one', () => {
    fs.writeFileSync(path.join(root, id, 'berth.json'), JSON.stringify({ id: 'other', runtime: 'runc' }));
    const meta = loadMeta(ctx(), (m) => warnings.push(m));
    expect(meta?.id).toBe(id);
    expect(meta?.rebuilt).toMatch(/not a container record/);
  });

  it('a corrupt record with nothing else left still yields a record (its exit file may say how it ended)', () => {
    fs.writeFileSync(path.join(root, id, 'berth.json'), 'garbage');
    expect(loadMeta(ctx(), (m) => warnings.push(m))).toMatchObject({ id, runtime: 'runc' });
  });

  it('a half-made bundle (no record, no runtime state, no monitor) is nothing to manage', () => {
    expect(loadMeta(ctx(), (m) => warnings.push(m))).toBeNull();
    expect(warnings).toEqual([]);
  });
});

describe('process liveness', () => {
  it('tells a process from a recycled pid by its start time', () => {
    const me = procRef(process.pid)!;
    expect(stillRunning(me)).toBe(true);
    expect(stillRunning({ pid: process.pid, start: String(Number(me.start) + 1) })).toBe(false);
    expect(stillRunning(null)).toBe(false);
  });

  it("reads an unreaped zombie's exit status: a code, or 128+signal", async () => {
    // The shell starts a child and execs sleep, which never reaps it: a zombie that stays. The
    // child waits a moment so that it ends after the exec (the shell would reap it before).
    for (const [child, want] of [['sleep 0.3; exit 7', 7], ['sleep 0.3; kill -9 $$', 137]] as const) {
      const parent = spawn('/bin/sh', ['-c', `sh -c '${child}' & echo $!; exec sleep 30`], { stdio: ['ignore', 'pipe', 'ignore'] });
      try {
        const pid = Number(await new Promise<string>((r) => parent.stdout.once('data', (d: Buffer) => r(d.toString().trim()))));
        let code: number | null = null;
        for (let i = 0; i < 400 && code === null; i++) {
          code = zombieExitCode({ pid, start: '' });
          if (code === null) await new Promise((r) => setTimeout(r, 5));
        }
        expect(code).toBe(want);
        expect(stillRunning({ pid, start: '' })).toBe(false);
      } finally {
        parent.kill('SIGKILL');
      }
    }
  });

  it('without a zombie: 137 when berth sent SIGKILL, else 255 marked unknown', () => {
    const gone = spawnSync('/bin/true').pid;
    expect(lostExitCode({ pid: gone, start: '1' }, true)).toEqual({ code: 137, known: true });
    expect(lostExitCode({ pid: gone, start: '1' }, false)).toEqual({ code: EXIT_CODE_UNKNOWN, known: false });
    expect(lostExitCode(undefined, false)).toEqual({ code: EXIT_CODE_UNKNOWN, known: false });
    expect(EXIT_CODE_UNKNOWN).toBe(255); // dockerd's code for an exit status that could not be retrieved
  });
});
