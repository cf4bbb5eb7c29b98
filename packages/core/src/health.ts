/**
 * Health checks (dockerd's daemon/health.go), kept in the engine as dockerd keeps them in the
 * daemon: the probe of `Config.Healthcheck` (`CMD`, `CMD-SHELL`; `NONE` or nothing: no probe)
 * runs through the engine's exec (ExecService: exec_create/exec_start/exec_die events, every
 * backend that has exec), its result goes into `State.Health` (Status, FailingStreak, the last
 * 5 Log entries, output cut at 4096 bytes) which is saved with the record, and a change of
 * status is the event `health_status: healthy|unhealthy`. A probe still running after its
 * timeout is killed (SIGKILL through the exec session) and counts as a failure.
 *
 * One monitor per running container: the engine's own `core:health` taps start it when the
 * container starts (Health reset to starting), stop it when it exits, pauses or is removed
 * (Health then says unhealthy, as dockerd's), reopen it on unpause, and resume it after a
 * daemon restart (afterLiveRestore) with the stored Health kept. Why a core module and not a
 * plugin: docs/lifecycle.md#health-checks.
 */
import { Writable } from 'node:stream';
import { formatRfc3339Nano, parseRfc3339Nano, type Clock } from './clock.js';
import { errorMessage } from './errors.js';
import type { ExecConfig } from './exec.js';
import { declareFailpoint, failpoint } from './failpoint.js';
import type { LiveRestoreContext, StateChange } from './hooks.js';
import type { Logger } from './logger.js';
import type { ExecSession } from './runtime.js';
import { SIGKILL } from './signals.js';
import type { ContainerRecord, HealthConfig, HealthState } from './types.js';

/** Name of the engine's taps on onStateChange and afterLiveRestore. */
export const HEALTH_TAP = 'core:health';

const MS = 1_000_000;
/** dockerd's defaults, in the API's nanoseconds. */
export const HEALTH_DEFAULTS = Object.freeze({
  interval: 30_000 * MS,
  timeout: 30_000 * MS,
  startPeriod: 0,
  startInterval: 5_000 * MS,
  retries: 3,
});
/** Longest probe output kept (bytes); more is cut and "..." appended. */
export const MAX_PROBE_OUTPUT = 4096;
/** Log entries kept, oldest first. */
export const MAX_HEALTH_LOG = 5;
/** How long an exec may take to start before the probe gives up (dockerd: 30 s, not part of the timeout). */
const EXEC_START_TIMEOUT_MS = 30_000;
/** After killing a probe past its timeout, how long to wait for it to be gone before going on. */
const KILL_WAIT_MS = 10_000;
/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const FP_BEFORE_SAVE = declareFailpoint(
  'health.beforeSave',
  'core health monitor: a probe result is in the record in memory (State.Health), before it is saved',
);

export type HealthLogEntry = HealthState['Log'][number];

/** What the monitor needs of the container side (ContainerService provides it). */
export interface HealthContainers {
  /** The live record (not a copy); throws when the container is gone. */
  liveRecord(id: string): ContainerRecord;
  save(rec: ContainerRecord): Promise<void>;
  emitEvent(rec: ContainerRecord, action: string, extra?: Record<string, string>): void;
}

/** What the monitor needs of exec (ExecService provides it). */
export interface HealthExecs {
  create(id: string, config: ExecConfig): Promise<{ Id: string }>;
  start(execId: string, opts: { streams?: { stdout?: NodeJS.WritableStream; stderr?: NodeJS.WritableStream } }): Promise<ExecSession>;
}

/**
 * The command a container's healthcheck runs (dockerd's getProbe + getShell): `CMD a b` → [a, b];
 * `CMD-SHELL x` → [...Config.Shell or /bin/sh -c, x]; null for no probe (no Test, `NONE`, or an
 * unknown type, which dockerd only logs). `[]` when CMD has no command (a probe that fails).
 */
export function probeCommand(config: { Healthcheck?: HealthConfig | null; Shell?: string[] | null }): string[] | null {
  const test = config.Healthcheck?.Test;
  if (!test || test.length === 0) return null;
  if (test[0] === 'CMD') return test.slice(1);
  if (test[0] === 'CMD-SHELL') return test.length > 1 ? [...(config.Shell?.length ? config.Shell : ['/bin/sh', '-c']), ...test.slice(1)] : [];
  return null;
}

/** Go's time.Duration.String() of nanoseconds ("300ms", "30s", "1m30s", "1.5µs"), as dockerd prints timeouts. */
export function goDuration(ns: number): string {
  if (ns === 0) return '0s';
  const sign = ns < 0 ? '-' : '';
  let n = Math.abs(Math.round(ns));
  const frac = (v: number, div: number): string => {
    const whole = Math.floor(v / div);
    const rest = v % div;
    if (!rest) return String(whole);
    return `${whole}.${String(rest).padStart(String(div).length - 1, '0').replace(/0+$/, '')}`;
  };
  if (n < 1000) return `${sign}${n}ns`;
  if (n < 1_000_000) return `${sign}${frac(n, 1000)}µs`;
  if (n < 1_000_000_000) return `${sign}${frac(n, 1_000_000)}ms`;
  const h = Math.floor(n / 3_600_000_000_000);
  n -= h * 3_600_000_000_000;
  const m = Math.floor(n / 60_000_000_000);
  n -= m * 60_000_000_000;
  const s = `${frac(n, 1_000_000_000)}s`;
  if (h) return `${sign}${h}h${m}m${s}`;
  if (m) return `${sign}${m}m${s}`;
  return `${sign}${s}`;
}

/** A probe's stdout and stderr together, at most MAX_PROBE_OUTPUT bytes (dockerd's limitedBuffer). */
export class ProbeOutput {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private truncated = false;

  write(data: Buffer | string): void {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    const keep = Math.min(MAX_PROBE_OUTPUT - this.size, buf.length);
    if (keep > 0) {
      this.chunks.push(buf.subarray(0, keep));
      this.size += keep;
    }
    if (keep < buf.length) this.truncated = true;
  }

  /** A writable for the exec's streams (never ended by a backend; never reports errors). */
  stream(): Writable {
    return new Writable({
      write: (chunk: Buffer | string, _enc, cb) => {
        this.write(chunk);
        cb();
      },
    });
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8') + (this.truncated ? '...' : '');
  }
}

/** Nanoseconds of a configured duration, its default when zero or unset (dockerd's timeoutWithDefault). */
function orDefault(v: number | undefined, dflt: number): number {
  return v ? v : dflt;
}

/**
 * Record one probe result in `health` (dockerd's handleProbeResult): appended to the Log (the
 * last MAX_HEALTH_LOG kept); exit 0 → healthy and the streak reset; anything else (also -1 for
 * a timeout or a probe that could not run) is a failure, which counts only once the start period
 * is over or the container has been healthy, and `Retries` failures in a row → unhealthy.
 * Returns the status before the result.
 */
export function applyProbeResult(health: HealthState, config: HealthConfig, result: HealthLogEntry, startedAtNs: bigint, resultStartNs: bigint): HealthState['Status'] {
  const before = health.Status;
  health.Log = [...(health.Log ?? []), result].slice(-MAX_HEALTH_LOG);
  if (result.ExitCode === 0) {
    health.FailingStreak = 0;
    health.Status = 'healthy';
    return before;
  }
  const retries = (config.Retries ?? 0) > 0 ? config.Retries! : HEALTH_DEFAULTS.retries;
  const inStartPeriod = health.Status === 'starting' && resultStartNs - startedAtNs < BigInt(orDefault(config.StartPeriod, HEALTH_DEFAULTS.startPeriod));
  if (!inStartPeriod) {
    health.FailingStreak += 1;
    if (health.FailingStreak >= retries) health.Status = 'unhealthy';
  }
  return before;
}

interface Monitor {
  readonly id: string;
  stopped: boolean;
  timer?: NodeJS.Timeout;
  /** The running probe's session, to kill when the monitor stops. */
  session?: ExecSession;
}

/** Probe runs in flight (probe, result, save), so close can let their saves finish. */
type Ticks = Set<Promise<void>>;

export class HealthMonitor {
  private readonly monitors = new Map<string, Monitor>();
  private readonly noKill = new Set<string>();
  private readonly ticks: Ticks = new Set();
  private closed = false;

  constructor(
    private readonly containers: HealthContainers,
    private readonly execs: HealthExecs,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** The onStateChange tap: start, stop and reopen monitors with the container's state. */
  async onStateChange(change: StateChange): Promise<void> {
    const id = change.container.ID;
    if (change.to === null) this.noKill.delete(id); // removed
    if (change.to === 'running') {
      const rec = this.record(id);
      if (!rec) return;
      // A fresh start resets Health (dockerd's initHealthMonitor); unpause and restore reopen it.
      const changed = change.reason === 'start' || change.reason === 'restart-policy' ? this.init(rec) : this.open(rec);
      if (changed) await this.save(rec);
      return;
    }
    if (change.from === 'running' || change.from === 'paused' || change.from === 'restarting') {
      const rec = this.record(id);
      if (this.stop(id) && rec?.State.Health) {
        // dockerd: a monitor that stops leaves the container unhealthy
        rec.State.Health.Status = 'unhealthy';
        // The exit handler saves the record after this hook; pause does not.
        if (change.reason === 'pause') await this.save(rec);
      }
    }
  }

  /** The afterLiveRestore tap: a container still running after a daemon restart gets its monitor back. */
  async onLiveRestore(ctx: LiveRestoreContext): Promise<void> {
    if (ctx.container.State.Status !== 'running') return;
    const rec = this.record(ctx.container.ID);
    if (rec && this.open(rec)) await this.save(rec);
  }

  /**
   * Engine close: monitors end, running probes are killed and a result being saved is saved;
   * State.Health stays as it is (the containers may keep running, and a restart resumes).
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const id of [...this.monitors.keys()]) this.stop(id);
    await Promise.allSettled([...this.ticks]);
  }

  private record(id: string): ContainerRecord | undefined {
    try {
      return this.containers.liveRecord(id);
    } catch {
      return undefined;
    }
  }

  /** Reset Health to starting and (re)start the monitor. Returns whether the record changed. */
  private init(rec: ContainerRecord): boolean {
    if (!probeCommand(rec.Config)) return false;
    this.stop(rec.ID);
    rec.State.Health = { Status: 'starting', FailingStreak: 0, Log: rec.State.Health?.Log ?? [] };
    this.open(rec);
    return true;
  }

  /** Start the monitor if the container has a probe and none runs. Returns whether the record changed. */
  private open(rec: ContainerRecord): boolean {
    if (this.closed || !probeCommand(rec.Config) || this.monitors.has(rec.ID)) return false;
    const added = !rec.State.Health;
    if (added) rec.State.Health = { Status: 'starting', FailingStreak: 0, Log: [] };
    const m: Monitor = { id: rec.ID, stopped: false };
    this.monitors.set(rec.ID, m);
    this.schedule(m, rec);
    return added;
  }

  /** Stop the monitor (and kill its running probe). Returns whether one was running. */
  private stop(id: string): boolean {
    const m = this.monitors.get(id);
    if (!m) return false;
    this.monitors.delete(id);
    m.stopped = true;
    if (m.timer) clearTimeout(m.timer);
    if (m.session) void this.kill(id, m.session);
    return true;
  }

  /** The next probe: after Interval, or StartInterval while starting within the start period. */
  private schedule(m: Monitor, rec: ContainerRecord): void {
    const hc = rec.Config.Healthcheck ?? {};
    const startPeriod = orDefault(hc.StartPeriod, HEALTH_DEFAULTS.startPeriod);
    const sinceStart = Number(this.clock.nowNano() - this.startedAt(rec));
    const ns =
      sinceStart < startPeriod && rec.State.Health?.Status === 'starting'
        ? orDefault(hc.StartInterval, HEALTH_DEFAULTS.startInterval)
        : orDefault(hc.Interval, HEALTH_DEFAULTS.interval);
    const run = () => {
      const p = this.tick(m).catch((err: unknown) => this.logger.error('health check failed', { container: m.id, error: errorMessage(err) }));
      this.ticks.add(p);
      void p.finally(() => this.ticks.delete(p));
    };
    m.timer = setTimeout(run, Math.min(MAX_TIMER_MS, Math.max(1, Math.round(ns / MS))));
  }

  private startedAt(rec: ContainerRecord): bigint {
    return parseRfc3339Nano(rec.State.StartedAt) ?? 0n;
  }

  private async tick(m: Monitor): Promise<void> {
    m.timer = undefined;
    const rec = this.record(m.id);
    if (m.stopped || !rec) return;
    const startNs = this.clock.nowNano();
    const { exitCode, output } = await this.probe(m, rec);
    if (m.stopped || !rec.State.Health) return; // stopped meanwhile: dockerd drops the result
    const entry: HealthLogEntry = { Start: formatRfc3339Nano(startNs), End: formatRfc3339Nano(this.clock.nowNano()), ExitCode: exitCode, Output: output };
    const before = applyProbeResult(rec.State.Health, rec.Config.Healthcheck ?? {}, entry, this.startedAt(rec), startNs);
    const now = rec.State.Health.Status;
    if (now !== before) this.containers.emitEvent(rec, `health_status: ${now}`);
    try {
      failpoint(FP_BEFORE_SAVE);
      await this.containers.save(rec);
    } catch (err) {
      this.logger.error('saving health state failed', { container: rec.ID, error: errorMessage(err) });
    }
    if (!m.stopped) this.schedule(m, rec);
  }

  /** One run of the probe (dockerd's cmdProbe.run): exit code and output; -1 when it could not run or timed out. */
  private async probe(m: Monitor, rec: ContainerRecord): Promise<{ exitCode: number; output: string }> {
    const cmd = probeCommand(rec.Config);
    if (!cmd || cmd.length === 0) return { exitCode: -1, output: `healthcheck for container ${rec.ID} has no command` };
    const out = new ProbeOutput();
    let session: ExecSession;
    try {
      const { Id } = await this.execs.create(rec.ID, {
        Cmd: cmd,
        AttachStdin: false,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        Privileged: false,
        ...(rec.Config.User ? { User: rec.Config.User } : {}),
        ...(rec.Config.WorkingDir ? { WorkingDir: rec.Config.WorkingDir } : {}),
      });
      session = await this.startWithin(rec.ID, this.execs.start(Id, { streams: { stdout: out.stream(), stderr: out.stream() } }));
    } catch (err) {
      this.logger.warn('health check could not run', { container: rec.ID, error: errorMessage(err) });
      return { exitCode: -1, output: errorMessage(err) };
    }
    m.session = session;
    if (m.stopped) void this.kill(rec.ID, session); // stopped while the exec was starting
    const timeoutNs = orDefault(rec.Config.Healthcheck?.Timeout, HEALTH_DEFAULTS.timeout);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.min(MAX_TIMER_MS, Math.max(1, Math.round(timeoutNs / MS))));
    });
    const exited = session.exited.catch(() => -1);
    const first = await Promise.race([exited, timedOut]);
    clearTimeout(timer);
    m.session = undefined;
    if (first !== 'timeout') return { exitCode: first, output: out.text() };
    await this.kill(rec.ID, session);
    const text = out.text();
    const msg = `Health check exceeded timeout (${goDuration(timeoutNs)})`;
    return { exitCode: -1, output: text ? `${msg}: ${text}` : msg };
  }

  /** An exec that does not start within EXEC_START_TIMEOUT_MS fails the probe; if it starts later it is killed. */
  private async startWithin(id: string, starting: Promise<ExecSession>): Promise<ExecSession> {
    let timer: NodeJS.Timeout | undefined;
    let late = false;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        late = true;
        reject(new Error(`timed out starting health check for container ${id}`));
      }, EXEC_START_TIMEOUT_MS);
    });
    starting.then(
      (s) => {
        if (late) void this.kill(id, s);
      },
      () => {},
    );
    try {
      return await Promise.race([starting, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL a probe and wait (bounded) until it is gone, so dying probes never pile up. */
  private async kill(id: string, session: ExecSession): Promise<void> {
    if (!session.kill) {
      if (!this.noKill.has(id)) this.logger.warn('health check timed out and its runtime backend cannot kill an exec: the probe is left running', { container: id });
      this.noKill.add(id);
      return;
    }
    try {
      await session.kill(SIGKILL);
    } catch (err) {
      this.logger.warn('killing a health check probe failed', { container: id, error: errorMessage(err) });
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([session.exited.catch(() => -1), new Promise((r) => (timer = setTimeout(r, KILL_WAIT_MS)))]);
    clearTimeout(timer);
  }

  private async save(rec: ContainerRecord): Promise<void> {
    await this.containers.save(rec).catch((err: unknown) => this.logger.error('saving health state failed', { container: rec.ID, error: errorMessage(err) }));
  }
}
