/**
 * The runtime's command line (error messages, error kinds), runc's fast start through its
 * exec.fifo — both paths: nothing to start from, and a waiting init that goes on — and the
 * mount helper.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import { classifyRuntimeError, runRuntime, runtimeErrorMessage } from '../src/runtime-cli.js';
import { fastStartRunc, mountsUnder } from '../src/files.js';
import { findExecutable } from '../src/registry.js';

const runc = findExecutable('runc');
const realRuncSkip =
  process.getuid?.() !== 0 ? 'needs root (runc creates namespaces and cgroups)'
  : !runc ? 'runc is not installed'
  : !fs.existsSync('/bin/busybox') ? 'busybox-static is not installed (the container runs /bin/busybox true)'
  : null;

/** A FIFO made with mkfifo(1) (Node has no mkfifo). */
function mkfifo(file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  expect(spawnSync('mkfifo', ['-m', '600', file]).status).toBe(0);
}

describe('runtime CLI errors', () => {
  it('extracts runc error messages', () => {
    const stderr =
      'time="2026-11-28T07:33:09Z" level=warning msg="ignored"\n' +
      'time="2026-11-28T07:33:09Z" level=error msg="container \\"abc\\" does not exist"\n';
    expect(runtimeErrorMessage(stderr)).toBe('container "abc" does not exist');
    expect(runtimeErrorMessage('plain failure\n')).toBe('plain failure');
  });
  it('classifies them into error kinds', () => {
    expect(errorKind(classifyRuntimeError('x', 'runc kill', 'container does not exist'))).toBe('NotFound');
    expect(errorKind(classifyRuntimeError('x', 'runc kill', 'container not running'))).toBe('Conflict');
    expect(errorKind(classifyRuntimeError('x', 'runc start', 'exec format error'))).toBe('System');
  });
  it('runs a runtime binary and translates its failure', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cli-'));
    try {
      const bin = path.join(dir, 'rt');
      fs.writeFileSync(bin, '#!/bin/sh\nif [ "$3" = state ]; then echo "{\\"status\\":\\"running\\"}"; exit 0; fi\necho \'level=error msg="container not running"\' >&2; exit 1\n', {
        mode: 0o755,
      });
      const ok = await runRuntime({ name: 'rt', path: bin, globalArgs: ['--root', dir] }, 'c1', ['state', 'c1']);
      expect(JSON.parse(ok.stdout)).toEqual({ status: 'running' });
      const err = await runRuntime({ name: 'rt', path: bin, globalArgs: ['--root', dir] }, 'c1', ['kill', 'c1', '15']).catch((e: unknown) => e);
      expect(errorKind(err)).toBe('Conflict');
      expect((err as Error).message).toBe('rt kill c1: container not running');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('helpers', () => {
  it('fast start applies to runc only, and only with its exec.fifo', async () => {
    expect(await fastStartRunc({ runtimePath: '/usr/bin/crun', globalArgs: [], id: 'x' })).toBe(false);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-fs-'));
    try {
      expect(await fastStartRunc({ runtimePath: '/usr/sbin/runc', globalArgs: ['--root', dir], id: 'x' })).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it('fast start lets a waiting init go on: it reads the byte init writes into exec.fifo, then removes the fifo', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-fs-'));
    try {
      const fifo = path.join(dir, 'c1', 'exec.fifo');
      mkfifo(fifo);
      // What `runc init` does at the end of create: open exec.fifo for writing (blocks until
      // a reader opens it), write one byte, then exec the container's process.
      const init = spawn('/bin/sh', ['-c', 'printf 0 > "$0" && echo started', fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      init.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => init.on('close', resolve));
      expect(await fastStartRunc({ runtimePath: '/usr/sbin/runc', globalArgs: ['--root', dir], id: 'c1' })).toBe(true);
      expect(await exited).toBe(0);
      expect(out).toBe('started\n');
      expect(fs.existsSync(fifo)).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it.skipIf(realRuncSkip)(`fast start starts a container real runc created${realRuncSkip ? ` (skipped: ${realRuncSkip})` : ''}`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-fs-runc-'));
    const root = path.join(dir, 'state');
    const id = `berth-fast-start-${process.pid}`;
    const bin = { name: 'runc', path: runc!, globalArgs: ['--root', root] };
    try {
      const rootfs = path.join(dir, 'bundle', 'rootfs');
      fs.mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
      fs.mkdirSync(path.join(rootfs, 'proc'));
      fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin', 'busybox'));
      fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
      const spec = {
        ociVersion: '1.0.2',
        process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['/bin/busybox', 'true'], env: ['PATH=/bin'], cwd: '/' },
        root: { path: rootfs, readonly: true },
        mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
        linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }], cgroupsPath: `/${id}` },
      };
      fs.writeFileSync(path.join(dir, 'bundle', 'config.json'), JSON.stringify(spec));
      // Not through runRuntime: `runc init` keeps the stdio it inherits until it is started
      // (that is what conmon is for), so a pipe would never close.
      const log = path.join(dir, 'runc.log');
      const created = spawn(runc!, ['--root', root, '--log', log, 'create', '--bundle', path.join(dir, 'bundle'), id], { stdio: 'ignore' });
      const code = await new Promise<number | null>((resolve) => created.on('exit', resolve));
      expect(code, fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : 'runc create failed').toBe(0);
      expect(JSON.parse((await runRuntime(bin, id, ['state', id])).stdout).status).toBe('created');
      expect(await fastStartRunc({ runtimePath: runc!, globalArgs: bin.globalArgs, id })).toBe(true);
      expect(fs.existsSync(path.join(root, id, 'exec.fifo'))).toBe(false);
      // Started: `true` runs and exits, and runc no longer says 'created'.
      let status = 'created';
      while (status === 'created' || status === 'running') {
        await new Promise((r) => setTimeout(r, 20));
        status = JSON.parse((await runRuntime(bin, id, ['state', id])).stdout).status as string;
      }
      expect(status).toBe('stopped');
    } finally {
      await runRuntime(bin, id, ['delete', '--force', id]).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it('lists mounts under a directory', async () => {
    expect(await mountsUnder('/proc')).toContain('/proc');
    expect(await mountsUnder('/nonexistent/dir')).toEqual([]);
  });
});
