import { describe, expect, it } from 'vitest';
import { nativeAddon } from '@berth/native';
import {
  ConflictError,
  KeyedLock,
  MemoryEventBus,
  PluginError,
  InvalidParameterError,
  NotFoundError,
  ZERO_TIME,
  canTransition,
  diffPaths,
  errorKind,
  formatRfc3339Nano,
  generateId,
  generateName,
  httpStatus,
  initialState,
  mergeImageConfigIntoContainer,
  normaliseName,
  parseRfc3339Nano,
  parseSignal,
  parseSize,
  setPaused,
  setRunning,
  setStopped,
  setUnpaused,
  SystemHost,
  type Clock,
  type ContainerRecord,
  type ContainerStatus,
} from '../src/index.js';

describe('ids and names', () => {
  it('IDs are 64 hex and their short form never parses as a number', () => {
    for (let i = 0; i < 200; i++) {
      const id = generateId();
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      expect(id.slice(0, 12)).not.toMatch(/^\d+$/);
    }
  });
  it('generated names are valid', () => {
    for (let i = 0; i < 50; i++) expect(() => normaliseName(generateName(i % 3))).not.toThrow();
  });
});

describe('signals', () => {
  it('parses like Docker', () => {
    expect(parseSignal('SIGKILL')).toBe(9);
    expect(parseSignal('kill')).toBe(9);
    expect(parseSignal('TERM')).toBe(15);
    expect(parseSignal('15')).toBe(15);
    expect(parseSignal(2)).toBe(2);
    expect(parseSignal('RTMIN+3')).toBe(37);
    expect(parseSignal('SIGRTMAX')).toBe(64);
    for (const bad of ['0', '65', 'FOO', 'SIG', '1.5', '-9']) expect(() => parseSignal(bad)).toThrow(`Invalid signal: ${bad}`);
    expect(() => parseSignal(0)).toThrow(InvalidParameterError);
  });
});

describe('time', () => {
  it('formats RFC 3339 with nanoseconds like Go (trailing zeros trimmed) and parses back', () => {
    expect(formatRfc3339Nano(1_700_000_000_123_456_789n)).toBe('2023-11-14T22:13:20.123456789Z');
    expect(formatRfc3339Nano(1_700_000_000_120_000_000n)).toBe('2023-11-14T22:13:20.12Z');
    expect(formatRfc3339Nano(1_700_000_000_000_000_000n)).toBe('2023-11-14T22:13:20Z');
    expect(parseRfc3339Nano('2023-11-14T22:13:20.123456789Z')).toBe(1_700_000_000_123_456_789n);
    expect(parseRfc3339Nano('2023-11-14T23:13:20.5+01:00')).toBe(1_700_000_000_500_000_000n);
    expect(parseRfc3339Nano('yesterday')).toBeNull();
    expect(ZERO_TIME).toBe('0001-01-01T00:00:00Z');
  });

  it('the formatted second is reused within a second, never across one (times before 1970 too)', () => {
    const times = [
      1_700_000_000_999_999_999n, 1_700_000_001_000_000_000n, 1_700_000_001_000_000_001n, 1_700_000_000_500_000_000n,
      -1n, -500_000_000n, -1_000_000_000n, 0n, 1_700_000_001_000_000_001n,
    ];
    const direct = (n: bigint) => new Date(Number((n - (((n % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n)) / 1_000_000n)).toISOString().slice(0, 19);
    for (const n of times) expect(formatRfc3339Nano(n).slice(0, 19), String(n)).toBe(direct(n));
    expect(formatRfc3339Nano(-500_000_000n)).toBe('1969-12-31T23:59:59.5Z');
    expect(formatRfc3339Nano(1_700_000_001_000_000_001n)).toBe('2023-11-14T22:13:21.000000001Z');
  });
});

describe('state machine', () => {
  const rec = () => ({ ID: 'x', State: initialState() }) as unknown as ContainerRecord;
  it('allows the legal transitions only', () => {
    const legal: Array<[ContainerStatus, ContainerStatus]> = [
      ['created', 'running'], ['running', 'paused'], ['paused', 'running'], ['running', 'exited'], ['exited', 'running'],
      ['exited', 'removing'], ['created', 'removing'], ['removing', 'dead'], ['dead', 'removing'], ['running', 'restarting'], ['restarting', 'running'],
    ];
    const illegal: Array<[ContainerStatus, ContainerStatus]> = [
      ['created', 'paused'], ['exited', 'paused'], ['dead', 'running'], ['removing', 'running'], ['created', 'restarting'], ['dead', 'exited'],
    ];
    for (const [a, b] of legal) expect(canTransition(a, b), `${a}->${b}`).toBe(true);
    for (const [a, b] of illegal) expect(canTransition(a, b), `${a}->${b}`).toBe(false);
    const r = rec();
    expect(() => setPaused(r)).toThrow(ConflictError);
    expect(() => setPaused(r)).toThrow('cannot change the state of container x from created to paused');
  });

  it('keeps flags, Pid, ExitCode, times consistent', () => {
    const r = rec();
    setRunning(r, 42, '2024-01-01T00:00:00.1Z');
    expect(r.State).toMatchObject({ Status: 'running', Running: true, Paused: false, Pid: 42, ExitCode: 0, StartedAt: '2024-01-01T00:00:00.1Z', FinishedAt: ZERO_TIME });
    setPaused(r);
    expect(r.State).toMatchObject({ Status: 'paused', Running: true, Paused: true });
    setUnpaused(r);
    setStopped(r, { exitCode: 137, oomKilled: true, finishedAt: '2024-01-01T00:00:01Z' });
    expect(r.State).toMatchObject({ Status: 'exited', Running: false, Paused: false, Pid: 0, ExitCode: 137, OOMKilled: true, FinishedAt: '2024-01-01T00:00:01Z' });
    setRunning(r, 43, '2024-01-01T00:00:02Z');
    expect(r.State).toMatchObject({ ExitCode: 0, OOMKilled: false, FinishedAt: '2024-01-01T00:00:01Z' });
  });
});

describe('errors', () => {
  it('PluginError keeps the kind of its cause along the chain', () => {
    const e = new PluginError('p', 'beforeMount', new PluginError('q', 'inner', new NotFoundError('no such volume')));
    expect(errorKind(e)).toBe('NotFound');
    expect(httpStatus(e)).toBe(404);
    expect(errorKind(new PluginError('p', 'h', new Error('plain')))).toBe('System');
  });
});

describe('event bus', () => {
  it('keeps a bounded ring, filters by time, isolates throwing listeners', () => {
    let now = 1_000_000_000_000_000_000n;
    const clock: Clock = { nowNano: () => (now += 1_000_000_000n) };
    const errors: unknown[] = [];
    const bus = new MemoryEventBus(clock, 3, (e) => errors.push(e));
    const got: string[] = [];
    bus.subscribe(() => {
      throw new Error('bad listener');
    });
    bus.subscribe((e) => got.push(e.Action));
    bus.emitter.on('event', () => {
      throw new Error('bad emitter listener');
    });
    for (const a of ['create', 'start', 'die', 'destroy']) bus.publish('container', a, 'id1', { name: 'x' });
    expect(got).toEqual(['create', 'start', 'die', 'destroy']);
    expect(errors).toHaveLength(8);
    const h = bus.history();
    expect(h.map((e) => e.Action)).toEqual(['start', 'die', 'destroy']);
    expect(bus.history({ sinceNano: h[1]!.timeNano }).map((e) => e.Action)).toEqual(['die', 'destroy']);
    expect(bus.history({ untilNano: h[1]!.timeNano }).map((e) => e.Action)).toEqual(['start', 'die']);
    expect(h[0]).toMatchObject({ Type: 'container', scope: 'local', time: Number(h[0]!.timeNano / 1_000_000_000n), Actor: { ID: 'id1', Attributes: { name: 'x' } } });
  });
});

describe('helpers', () => {
  it('parseSize follows Docker units', () => {
    expect(parseSize('100')).toBe(100);
    expect(parseSize('10k')).toBe(10240);
    expect(parseSize('10m')).toBe(10 * 1024 * 1024);
    expect(parseSize('1.5g')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('2MB')).toBe(2 * 1024 * 1024);
    expect(() => parseSize('ten')).toThrow("invalid size: 'ten'");
  });

  it('KeyedLock serializes per key and runs keys in parallel', async () => {
    const lock = new KeyedLock();
    const log: string[] = [];
    const job = (k: string, n: string, ms: number) =>
      lock.run(k, async () => {
        log.push(`start ${n}`);
        await new Promise((r) => setTimeout(r, ms));
        log.push(`end ${n}`);
      });
    await Promise.all([job('a', 'a1', 30), job('a', 'a2', 1), job('b', 'b1', 5)]);
    expect(log).toEqual(['start a1', 'start b1', 'end b1', 'end a1', 'start a2', 'end a2']);
    // a failing call releases the lock
    await expect(lock.run('a', async () => { throw new Error('x'); })).rejects.toThrow('x');
    await lock.run('a', async () => void log.push('after'));
    expect(log.at(-1)).toBe('after');
    expect(lock.busy('a')).toBe(false);
  });

  it('diffPaths reports changed leaves and added/removed subtrees', () => {
    expect(diffPaths({ a: 1, b: { c: [1, 2] } }, { a: 1, b: { c: [1, 3, 4] }, d: { e: 1 } }).sort()).toEqual(['b.c[1]', 'b.c[2]', 'd']);
    expect(diffPaths({ a: 1 }, { a: 1 })).toEqual([]);
    expect(diffPaths({ a: { x: 1 } }, {})).toEqual(['a']);
  });

  it('merges image config into the container config like dockerd', () => {
    const m = mergeImageConfigIntoContainer(
      { Env: ['A=2', 'C=3'], Labels: { x: 'c' } },
      { Env: ['PATH=/bin', 'A=1'], Cmd: ['sh'], Entrypoint: ['/init'], Labels: { x: 'i', y: 'i' }, User: 'app', ExposedPorts: { '80/tcp': {} } },
    );
    // dockerd's order: the container's Env first, then the image's keys it does not set
    expect(m).toMatchObject({ Env: ['A=2', 'C=3', 'PATH=/bin'], Cmd: ['sh'], Entrypoint: ['/init'], Labels: { x: 'c', y: 'i' }, User: 'app' });
    // container Cmd without Entrypoint keeps the image's Entrypoint; container Entrypoint drops the image Cmd
    expect(mergeImageConfigIntoContainer({ Cmd: ['ls'] }, { Cmd: ['sh'], Entrypoint: ['/init'] })).toMatchObject({ Cmd: ['ls'], Entrypoint: ['/init'] });
    const e = mergeImageConfigIntoContainer({ Entrypoint: ['/bin/echo'] }, { Cmd: ['sh'], Entrypoint: ['/init'] });
    expect(e.Entrypoint).toEqual(['/bin/echo']);
    expect(e.Cmd).toBeUndefined();
    // an explicit empty Entrypoint (`--entrypoint ""`) clears the image's, and takes its Cmd
    const cleared = mergeImageConfigIntoContainer({ Entrypoint: [] }, { Cmd: ['sh'], Entrypoint: ['/init'] });
    expect(cleared.Entrypoint).toEqual([]);
    expect(cleared.Cmd).toEqual(['sh']);
  });
});

describe('host probes', () => {
  it('SystemHost answers from /proc and /sys, once', async () => {
    const h = new SystemHost();
    const f = await h.features();
    expect(typeof f.apparmor).toBe('boolean');
    expect(typeof f.seccomp).toBe('boolean');
    expect([1, 2]).toContain(f.cgroupVersion);
    expect(f.kernel).toMatch(/^\d+\.\d+/);
    // the syscall ABIs from the native addon's probe; unknown without the addon
    expect(f.syscallAbis).toEqual(nativeAddon()?.syscallAbis() ?? { x32: null, ia32: null });
    expect(await h.features()).toBe(f);
  });
});
