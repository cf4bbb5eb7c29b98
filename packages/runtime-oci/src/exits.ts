/**
 * How the OCI backend learns of exits: conmon's exit files (`exits/<id>`, watched with fs.watch,
 * with a 2 s safety poll for lost inotify events) and the liveness of the monitors themselves —
 * a conmon that was killed writes no exit file, so the poll notices it is gone (pid and start
 * time, monitor.ts), asks the runtime whether the container still runs, watches the init
 * directly (every 100 ms while any container is without a monitor, so stop and rm -f are not
 * kept waiting) and reports the exit once it is over, with the best code there is. The same
 * poll removes the exec sessions found at restore once their monitors are gone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatLogTime, type ExitInfo, type RuntimeStatus } from '@berth/core';
import type { ExecEntry } from './exec.js';
import type { Pump } from './log-pump.js';
import { lostExitCode, procRef, stillRunning, type ProcRef } from './monitor.js';
import type { ContainerMeta } from './record.js';

export interface Tracked {
  meta: ContainerMeta;
  pump: Pump;
  /** Exit already reported (or read at restore). */
  exit?: ExitInfo;
  execs: Map<string, ExecEntry>;
  /** The runtime's `delete` of the exited container, started as soon as the exit is known. */
  reap?: Promise<boolean>;
  /** The container's conmon; undefined until its create reported (null: gone by then). */
  monitor?: ProcRef | null;
  /** The container's init process, when known. */
  init?: ProcRef | null;
  /** The monitor died without writing an exit file: berth watches the init itself. */
  monitorLost?: boolean;
  /** berth sent SIGKILL to the container (its exit code is 137 if the monitor cannot tell). */
  sigkilled?: boolean;
  /** A liveness check (it asks the runtime) is running. */
  checking?: boolean;
}

export interface ExitWatchHost {
  exitsDir: string;
  tracked: Map<string, Tracked>;
  runtimeState(meta: ContainerMeta): Promise<{ status: RuntimeStatus; pid: number } | null>;
  /** An exit is known (called once per container): report it. */
  exited(t: Tracked, exit: ExitInfo): void;
  /** An exec found at restore whose monitor is gone: remove its files. */
  forgetExec(t: Tracked, execId: string): void;
  warn(msg: string, err?: unknown): void;
}

export class ExitWatch {
  private watcher: fs.FSWatcher | null = null;
  private safetyTimer: NodeJS.Timeout | null = null;
  private lostTimer: NodeJS.Timeout | null = null;

  constructor(private readonly host: ExitWatchHost) {}

  start(): void {
    try {
      this.watcher = fs.watch(this.host.exitsDir, (_ev, name) => {
        if (name) this.checkExit(name);
      });
      this.watcher.on('error', (err) => this.host.warn('exit watcher failed', err));
    } catch (err) {
      this.host.warn('cannot watch exit dir; relying on the safety poll', err);
    }
    // A safety net for lost inotify events (exits normally arrive through the watcher), and
    // the liveness check of the monitors: a killed conmon writes no exit file.
    this.safetyTimer = setInterval(() => this.checkAll(), 2000);
    this.safetyTimer.unref();
  }

  private checkAll(): void {
    for (const t of this.host.tracked.values()) {
      this.checkExit(t.meta.id);
      this.checkMonitor(t);
      for (const [execId, ex] of t.execs) if (ex.orphan && !stillRunning(ex.orphan)) this.host.forgetExec(t, execId);
    }
  }

  /** Containers without a monitor are watched closely: stop/kill wait for their exit. */
  private watchLost(): void {
    if (!this.lostTimer) {
      this.lostTimer = setInterval(() => {
        let any = false;
        for (const t of this.host.tracked.values()) {
          if (!t.monitorLost || t.exit) continue;
          any = true;
          this.checkMonitor(t);
        }
        if (!any && this.lostTimer) {
          clearInterval(this.lostTimer);
          this.lostTimer = null;
        }
      }, 100);
      this.lostTimer.unref();
    }
  }

  /**
   * The monitor's liveness: gone without an exit file means it was killed. Then the runtime
   * and the init's pid say whether the container still runs; once it does not, its exit is
   * reported with the best code there is (monitor.ts: the real one, 137 after our SIGKILL, or
   * 255 logged as unknown).
   */
  checkMonitor(t: Tracked): void {
    if (t.exit || t.checking || t.monitor === undefined || stillRunning(t.monitor)) return;
    this.checkExit(t.meta.id); // it may have written the exit file just before it exited
    if (t.exit || this.host.tracked.get(t.meta.id) !== t) return;
    const id = t.meta.id;
    if (!t.monitorLost) {
      t.monitorLost = true;
      this.host.warn(`monitor of container ${id} (conmon${t.monitor ? ` pid ${t.monitor.pid}` : ''}) is gone without reporting an exit (killed?); watching the container's process directly — its output is no longer collected`);
      t.pump.stop();
      this.watchLost();
    }
    if (stillRunning(t.init)) return;
    t.checking = true;
    void this.host.runtimeState(t.meta)
      .catch(() => null)
      .then((st) => {
        t.checking = false;
        if (t.exit || this.host.tracked.get(id) !== t) return;
        if (st && st.pid > 0 && !t.init) t.init = { pid: st.pid, start: '' };
        if (st && st.status !== 'stopped') {
          // Still running as far as the runtime knows: watch that process from now on.
          const ref = procRef(st.pid);
          if (ref) {
            t.init = ref;
            return;
          }
        }
        const { code, known } = lostExitCode(t.init, !!t.sigkilled);
        if (!known) this.host.warn(`container ${id} exited while its monitor was gone: its exit code is unknown, reported as ${code}`);
        this.host.exited(t, { id, exitCode: code, oomKilled: false, exitedAt: new Date().toISOString() });
      });
  }

  readExit(meta: ContainerMeta): ExitInfo | null {
    let text: string;
    let st: fs.BigIntStats;
    try {
      text = fs.readFileSync(path.join(this.host.exitsDir, meta.id), 'utf8').trim();
      st = fs.statSync(path.join(this.host.exitsDir, meta.id), { bigint: true });
    } catch {
      return null;
    }
    if (!/^-?\d+$/.test(text)) return null;
    return {
      id: meta.id,
      exitCode: Number(text),
      oomKilled: fs.existsSync(path.join(meta.bundle, 'oom')),
      exitedAt: formatLogTime(st.mtimeNs),
    };
  }

  checkExit(id: string): void {
    const t = this.host.tracked.get(id);
    if (!t || t.exit) return;
    const exit = this.readExit(t.meta);
    if (!exit) return;
    this.host.exited(t, exit);
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
    for (const timer of [this.safetyTimer, this.lostTimer]) if (timer) clearInterval(timer);
    this.safetyTimer = null;
    this.lostTimer = null;
  }
}
