/** conmon's one argument builder: a container's create and an exec session differ only where they must. */
import { describe, expect, it } from 'vitest';
import { conmonArgv, type ConmonArgvOptions } from '../src/conmon.js';

const base: ConmonArgvOptions = {
  containerId: 'c1',
  runtimePath: '/usr/sbin/runc',
  runtimeArgs: ['--root', '/run/x/state/runc'],
  dir: '/run/x/c1',
  pidFile: '/run/x/c1/pidfile',
  log: 'k8s-file:/var/lib/x/c1-json.log.k8s',
  exitDir: '/run/x/exits',
  sockDir: '/run/x/s',
  tty: false,
  openStdin: false,
};

/** The value after each occurrence of a flag. */
function values(argv: string[], flag: string): string[] {
  return argv.flatMap((a, i) => (a === flag ? [argv[i + 1]] : []));
}

describe('conmonArgv', () => {
  it('a container: persisted in its bundle, its runtime args passed on, no exec flags', () => {
    const argv = conmonArgv({ ...base, tty: true, openStdin: true, leaveStdinOpen: true, restoreFrom: '/ckpt' });
    expect(values(argv, '-c')).toEqual(['c1']);
    expect(values(argv, '-u')).toEqual(['c1']);
    expect(values(argv, '-r')).toEqual(['/usr/sbin/runc']);
    expect(values(argv, '-b')).toEqual(['/run/x/c1']);
    expect(values(argv, '-P')).toEqual(['/run/x/c1/conmon.pid']);
    expect(values(argv, '--persist-dir')).toEqual(['/run/x/c1']);
    expect(values(argv, '--runtime-arg')).toEqual(['--root', '/run/x/state/runc']);
    expect(values(argv, '--restore')).toEqual(['/ckpt']);
    expect(argv).toEqual(expect.arrayContaining(['-t', '-i', '--leave-stdin-open']));
    expect(argv).not.toContain('--exec');
    expect(argv).not.toContain('--exec-attach');
  });

  it('an exec session: named by its exec ID, with its process spec and the attach handshake', () => {
    const argv = conmonArgv({
      ...base,
      exec: { execId: 'e1', processSpec: '/run/x/c1/exec/e1/process.json' },
      dir: '/run/x/c1/exec/e1',
      pidFile: '/run/x/c1/exec/e1/pid',
      log: 'none',
      exitDir: '/run/x/c1/exec/e1/exit',
      openStdin: true,
    });
    expect(values(argv, '-c')).toEqual(['c1']);
    expect(values(argv, '-u')).toEqual(['e1']);
    expect(values(argv, '--exec-process-spec')).toEqual(['/run/x/c1/exec/e1/process.json']);
    expect(argv).toEqual(expect.arrayContaining(['--exec', '--exec-attach', '-i']));
    expect(values(argv, '--runtime-arg')).toEqual(['--root', '/run/x/state/runc']);
    expect(argv).not.toContain('--persist-dir');
    expect(argv).not.toContain('--leave-stdin-open');
    expect(argv).not.toContain('-t');
  });

  it('stdin closed: neither -i nor --leave-stdin-open', () => {
    const argv = conmonArgv({ ...base, leaveStdinOpen: true });
    expect(argv).not.toContain('-i');
    expect(argv).not.toContain('--leave-stdin-open');
  });

  it('restoreFrom: conmon\'s restore mode for a container; never for an exec session (conmon would restore, not exec)', () => {
    expect(values(conmonArgv({ ...base, restoreFrom: '/d/c/checkpoints/cp1' }), '--restore')).toEqual(['/d/c/checkpoints/cp1']);
    expect(conmonArgv(base)).not.toContain('--restore');
    const exec = conmonArgv({ ...base, restoreFrom: '/d/c/checkpoints/cp1', exec: { execId: 'e1', processSpec: '/p.json' } });
    expect(exec).not.toContain('--restore');
    expect(exec).toContain('--exec');
  });

  it('noPivot: conmon passes --no-pivot to the runtime\'s create; never to an exec', () => {
    expect(conmonArgv({ ...base, noPivot: true })).toContain('--no-pivot');
    expect(conmonArgv(base)).not.toContain('--no-pivot');
    const exec = conmonArgv({ ...base, noPivot: true, exec: { execId: 'e1', processSpec: '/p.json' } });
    expect(exec).not.toContain('--no-pivot');
  });
});
