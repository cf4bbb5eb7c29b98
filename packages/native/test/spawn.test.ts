/**
 * The addon's run() and spawnMonitor() (posix_spawn): output, exit status and signals,
 * timeouts, environment, default signal dispositions in the child, the monitor's sync pipe
 * on fd 3, its log file, cwd and session; start failures with errno; the timeout's range and
 * its deadline on the wait; ENOMEM (not a silently cut output) when the output does not fit.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { envp, errnoName, nativeAddon } from '../src/index.js';
import { noAddon } from './build-skip.js';

const SH = '/bin/sh';

describe.skipIf(noAddon !== null)(`native run()${noAddon ? ` (skipped: ${noAddon})` : ''}`, () => {
  it('captures stdout and stderr apart and returns the exit status', async () => {
    const r = await nativeAddon()!.run(SH, ['sh', '-c', 'echo out; echo err >&2; printf "%s" "$0"; exit 3'], null, 0);
    expect(r).toMatchObject({ status: 3, signal: null, timedOut: false, stdout: 'out\nsh', stderr: 'err\n' });
    expect(r.pid).toBeGreaterThan(0);
  });

  it('reports a signal, and kills at the timeout', async () => {
    const n = nativeAddon()!;
    const killed = await n.run(SH, ['sh', '-c', 'kill -9 $$'], null, 0);
    expect(killed).toMatchObject({ status: null, signal: 9 });
    const slow = await n.run(SH, ['sh', '-c', 'exec sleep 5'], null, 100);
    expect(slow).toMatchObject({ timedOut: true, signal: 9 });
  });

  it('passes the given environment and reads large output whole', async () => {
    const n = nativeAddon()!;
    const r = await n.run(SH, ['sh', '-c', 'echo "$BERTH_X"; env | grep -c "^BERTH_"'], envp({ BERTH_X: 'a b', BERTH_Y: '1', PATH: '/usr/bin:/bin' }), 0);
    expect(r.stdout).toBe('a b\n2\n');
    const big = await n.run(SH, ['sh', '-c', 'seq 1 100000; seq 1 50000 >&2'], null, 0);
    expect(big.stdout.split('\n').length - 1).toBe(100000);
    expect(big.stderr.split('\n').length - 1).toBe(50000);
  });

  it('starts the child with default signal dispositions (Node ignores SIGPIPE, SIGXFSZ) and nothing blocked', async () => {
    const r = await nativeAddon()!.run(SH, ['sh', '-c', 'grep -E "^Sig(Ign|Blk)" /proc/self/status'], null, 0);
    expect(r.stdout).toMatch(/SigBlk:\s+0+\n/);
    const ign = BigInt(`0x${/SigIgn:\s+([0-9a-f]+)/.exec(r.stdout)![1]}`);
    // Signals 1-31: none ignored. (glibc's posix_spawn leaves its two internal real-time
    // signals, 32 and 33, ignored; glibc programs install their own handlers at start.)
    expect(ign & 0x7fffffffn).toBe(0n);
  });

  it('rejects with the errno when the program cannot start, and checks its arguments', async () => {
    const n = nativeAddon()!;
    const err = await n.run('/no/such/program', ['x'], null, 0).then(() => null, (e: unknown) => e);
    expect(errnoName(err)).toBe('ENOENT');
    expect((err as { syscall?: string }).syscall).toBe('posix_spawn');
    expect(() => n.run(SH, [], null, 0)).toThrow(TypeError);
    expect(() => n.run(SH, ['sh', 1 as unknown as string], null, 0)).toThrow(TypeError);
    expect(() => n.run(SH, ['sh'], null, 'x' as unknown as number)).toThrow(TypeError);
  });

  it('refuses a timeout that is not a number of ms from 0 to 2^31-1 (NaN would become an undefined int)', () => {
    const n = nativeAddon()!;
    for (const bad of [NaN, -1, Infinity, -Infinity, 2 ** 31]) {
      expect(() => n.run(SH, ['sh', '-c', 'exit 0'], null, bad), String(bad)).toThrow(RangeError);
      expect(() => n.spawnMonitor(SH, ['sh', '-c', 'exit 0'], null, null, '/dev/null', bad), String(bad)).toThrow(RangeError);
    }
  });

  it('the deadline covers the wait too: a child that closes its output and keeps running is killed at the timeout', async () => {
    // Before: EOF on both pipes ended the deadline, and waitpid blocked until the child exited.
    const r = await nativeAddon()!.run(SH, ['sh', '-c', 'exec >&- 2>&-; exec sleep 30'], null, 200);
    expect(r).toMatchObject({ timedOut: true, signal: 9, status: null });
  });
});

/** The addon in a child Node process whose address space is then capped (prlimit) 200 MB above its size. */
function runCapped(outputBytes: number): Promise<Record<string, unknown>> {
  const addon = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/native/berth.node');
  const script = `
    const n = require(${JSON.stringify(addon)});
    process.stdout.write(/VmSize:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1] + '\\n');
    process.stdin.once('data', () => n.run('/bin/sh', ['sh', '-c', 'head -c ${outputBytes} /dev/zero'], null, 0).then(
      (r) => ({ resolved: true, length: r.stdout.length }),
      (e) => ({ resolved: false, errno: e.errno, syscall: e.syscall })).then((o) => { process.stdout.write(JSON.stringify(o) + '\\n'); process.exit(0); }));`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    let capped = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const lines = out.split('\n');
      if (!capped && lines.length >= 2) {
        capped = true;
        const limit = (Number(lines[0]) + 200 * 1024) * 1024;
        execFileSync('prlimit', ['--pid', String(child.pid), `--as=${limit}:${limit}`]);
        child.stdin.write('go\n');
      }
    });
    child.on('error', reject);
    child.on('exit', () => {
      try {
        resolve(JSON.parse(out.split('\n')[1]) as Record<string, unknown>);
      } catch {
        reject(new Error(`no result from the capped child: ${out}`));
      }
    });
  });
}

const oomSkip = noAddon ?? (['/usr/bin/prlimit', '/bin/prlimit'].some((p) => existsSync(p)) ? null : 'prlimit (util-linux) is not installed');

describe.skipIf(oomSkip !== null)(`native run() out of memory (needs prlimit from util-linux)${oomSkip ? ` (skipped: ${oomSkip})` : ''}`, () => {
  it('output that cannot be held is never cut silently: the process is killed and the call rejects with ENOMEM', async () => {
    // 400 MB of output under a cap 200 MB above the process's size: the buffer cannot grow.
    const r = await runCapped(400_000_000);
    expect(r).toMatchObject({ resolved: false, syscall: expect.stringMatching(/^read/) });
    expect(errnoName(r)).toBe('ENOMEM');
  }, 60_000);
});

describe.skipIf(noAddon !== null)(`native spawnMonitor()${noAddon ? ` (skipped: ${noAddon})` : ''}`, () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'berth-monitor-'));
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('reads the first line of fd 3 from a daemonising monitor; log file, cwd and a new session', async () => {
    const log = path.join(dir, 'monitor.err');
    // Like conmon: the first process forks the monitor and exits; the monitor reports on fd 3
    // and keeps running (here: briefly) with the pipe closed.
    const script = `
      echo "cwd=$(pwd)" >&2
      ( echo "sid=$(ps -o sid= -p $$ 2>/dev/null || cut -d" " -f6 /proc/$$/stat)" >&2
        printf '{"data": %s}\\n' "$(cut -d" " -f6 /proc/self/stat)" >&3
        exec 3>&-; sleep 0.2 ) &
      exit 0`;
    const r = await nativeAddon()!.spawnMonitor(SH, ['sh', '-c', script], null, dir, log, 5000);
    expect(r.status).toBe(0);
    expect(r.timedOut).toBe(false);
    expect(JSON.parse(r.sync.trim())).toEqual({ data: expect.any(Number) });
    // The session id the monitor reported is the first process's pid: a new session.
    expect(JSON.parse(r.sync.trim()).data).toBe(r.pid);
    await new Promise((res) => setTimeout(res, 300));
    expect(await fsp.readFile(log, 'utf8')).toContain(`cwd=${dir}`);
  });

  it('a monitor that fails before reporting: empty sync, its exit status; a silent one times out', async () => {
    const n = nativeAddon()!;
    const log = path.join(dir, 'err');
    const failed = await n.spawnMonitor(SH, ['sh', '-c', 'echo "cannot start" >&2; exit 4'], null, null, log, 5000);
    expect(failed).toMatchObject({ status: 4, sync: '', timedOut: false });
    expect(await fsp.readFile(log, 'utf8')).toBe('cannot start\n');
    const silent = await n.spawnMonitor(SH, ['sh', '-c', 'exec sleep 5'], null, null, log, 100);
    expect(silent).toMatchObject({ timedOut: true, signal: 9, sync: '' });
  });

  it("a first process that reports and then does not exit is killed at the deadline (the wait has one too)", async () => {
    const r = await nativeAddon()!.spawnMonitor(SH, ['sh', '-c', 'echo \'{"data": 1}\' >&3; exec 3>&-; exec sleep 30'], null, null, path.join(dir, 'err'), 300);
    expect(r).toMatchObject({ timedOut: true, signal: 9, sync: '{"data": 1}\n' });
  });
});
