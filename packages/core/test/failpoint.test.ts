import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { declareFailpoint, failpoint, listFailpoints, setFailpointsForTest } from '../src/failpoint.js';

describe('failpoints', () => {
  afterEach(() => setFailpointsForTest(undefined));

  it('do nothing unless turned on', () => {
    declareFailpoint('test.off', 'a test');
    expect(() => failpoint('test.off')).not.toThrow();
  });

  it('throw a plain error or an ENOSPC error when told to', () => {
    declareFailpoint('test.err', 'a test');
    declareFailpoint('test.full', 'a test');
    setFailpointsForTest('test.err=error, test.full=enospc');
    expect(() => failpoint('test.err')).toThrow('failpoint test.err');
    let caught: NodeJS.ErrnoException | undefined;
    try {
      failpoint('test.full');
    } catch (err) {
      caught = err as NodeJS.ErrnoException;
    }
    expect(caught?.code).toBe('ENOSPC');
    expect(listFailpoints().get('test.err')).toBe('a test');
  });

  it('refuse an unknown action and an undeclared name', () => {
    expect(() => setFailpointsForTest('x=explode')).toThrow(/unknown action 'explode'/);
    setFailpointsForTest('never.declared=error');
    expect(() => failpoint('never.declared')).toThrow(/not declared/);
  });

  // The child runs the built module (Node 20 cannot import TypeScript); the suite builds first.
  const built = new URL('../dist/failpoint.js', import.meta.url);
  it.skipIf(!existsSync(built))('kill the process with SIGKILL (skipped: packages/core is not built)', () => {
    const script = `
      process.env.BERTH_FAILPOINTS = 'child.point=kill';
      const m = await import(${JSON.stringify(built.pathname)});
      m.declareFailpoint('child.point', 'a child');
      console.log('before');
      m.failpoint('child.point');
      console.log('after');
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.signal).toBe('SIGKILL');
    expect(r.stdout).toContain('before');
    expect(r.stdout).not.toContain('after');
    expect(r.stderr).toContain('failpoint child.point: kill\n');
  });
});
