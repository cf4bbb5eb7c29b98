import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import { classifyRuntimeError, runRuntime, runtimeErrorMessage } from '../src/runtime-cli.js';
import { fastStartRunc, mountsUnder } from '../src/files.js';

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
  it('lists mounts under a directory', async () => {
    expect(await mountsUnder('/proc')).toContain('/proc');
    expect(await mountsUnder('/nonexistent/dir')).toEqual([]);
  });
});
