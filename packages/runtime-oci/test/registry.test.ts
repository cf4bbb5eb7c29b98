import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import { RuntimeRegistry, buildRuntimes, findExecutable, parseAddRuntime, parseDaemonJsonRuntimes } from '../src/registry.js';

describe('runtime registry parsing', () => {
  it('parses --add-runtime name=path', () => {
    expect(parseAddRuntime('crun=/usr/bin/crun')).toEqual(['crun', { path: '/usr/bin/crun' }]);
    expect(parseAddRuntime('my.rt-2=rt')).toEqual(['my.rt-2', { path: 'rt' }]);
    for (const bad of ['crun', '=x', 'crun=', 'a b=/x', '-x=/y']) {
      expect(() => parseAddRuntime(bad), bad).toThrow();
      try {
        parseAddRuntime(bad);
      } catch (e) {
        expect(errorKind(e)).toBe('InvalidParameter');
      }
    }
  });

  it('validates daemon.json runtimes', () => {
    expect(parseDaemonJsonRuntimes({ kata: { path: '/k', runtimeArgs: ['--debug'] } })).toEqual({
      kata: { path: '/k', runtimeArgs: ['--debug'] },
    });
    expect(parseDaemonJsonRuntimes(undefined)).toEqual({});
    expect(() => parseDaemonJsonRuntimes([])).toThrow(/must be an object/);
    expect(() => parseDaemonJsonRuntimes({ k: {} })).toThrow(/"path" is required/);
    expect(() => parseDaemonJsonRuntimes({ k: { path: '/k', runtimeArgs: [1] } })).toThrow(/runtimeArgs/);
  });

  it('merges flags and daemon.json like dockerd', () => {
    const r = buildRuntimes({ addRuntime: ['fake=/opt/fake'], daemonJson: { crun: { path: 'crun' } }, defaultRuntime: 'crun' });
    expect(Object.keys(r.runtimes).sort()).toEqual(['crun', 'fake', 'runc']);
    expect(r.defaultRuntime).toBe('crun');
    expect(buildRuntimes({}).defaultRuntime).toBe('runc');
    expect(() => buildRuntimes({ addRuntime: ['runc=/x'] })).toThrow(/reserved/);
    expect(() => buildRuntimes({ daemonJson: { runc: { path: '/x' } } })).toThrow(/reserved/);
    expect(() => buildRuntimes({ addRuntime: ['a=/x'], daemonJson: { a: { path: '/y' } } })).toThrow(/both/);
    expect(() => buildRuntimes({ defaultRuntime: 'nope' })).toThrow(/nope.*known: runc/);
  });
});

describe('RuntimeRegistry', () => {
  const reg = new RuntimeRegistry({ runc: { path: 'runc' }, fake: { path: '/nonexistent/fake', runtimeArgs: ['--x'] } }, 'runc');

  it('answers an unknown name with an invalid parameter listing the known ones', () => {
    expect(reg.names()).toEqual(['fake', 'runc']);
    expect(reg.get('').name).toBe('runc');
    expect(reg.get(undefined).name).toBe('runc');
    let err: unknown;
    try {
      reg.get('kata');
    } catch (e) {
      err = e;
    }
    expect(errorKind(err)).toBe('InvalidParameter');
    expect((err as Error).message).toBe('unknown or invalid runtime name: kata (known runtimes: fake, runc)');
  });

  it('reports a missing binary when it is used, not before', () => {
    expect(reg.get('fake').config.runtimeArgs).toEqual(['--x']);
    let err: unknown;
    try {
      reg.resolve('fake');
    } catch (e) {
      err = e;
    }
    expect(errorKind(err)).toBe('System');
    expect((err as Error).message).toMatch(/runtime fake: binary "\/nonexistent\/fake" not found/);
  });

  it('refuses a default runtime that is not registered', () => {
    expect(() => new RuntimeRegistry({ runc: { path: 'runc' } }, 'crun')).toThrow(/crun.*known: runc/);
  });

  it('finds executables in PATH and by path', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-which-'));
    try {
      const exe = path.join(dir, 'myrt');
      fs.writeFileSync(exe, '#!/bin/sh\n', { mode: 0o755 });
      fs.writeFileSync(path.join(dir, 'notexec'), '', { mode: 0o644 });
      expect(findExecutable('myrt', `/nonexistent:${dir}`)).toBe(exe);
      expect(findExecutable(exe)).toBe(exe);
      expect(findExecutable('notexec', dir)).toBeNull();
      expect(findExecutable('missing', dir)).toBeNull();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
