/**
 * How the OCI backend learns of exits — of containers and of exec sessions alike: conmon's exit
 * files (a container's in `exits/<id>`, an exec's in `<bundle>/exec/<execId>/exit/`), watched
 * with fs.watch, with one 2 s safety poll for lost inotify events, and the liveness of the
 * monitors themselves — a conmon that was killed writes no exit file, so the poll notices it is
 * gone (pid and start time, monitor.ts), asks the runtime whether the container still runs,
 * watches the init directly (every 100 ms while any container is without a monitor, so stop
 * and rm -f are not kept waiting) and reports the exit once it is over, with the best code
 * there is. An exec whose monitor is gone ends the same way (exec.ts watches the execs a
 * restart finds with the same watchExec). After a daemon restart,
 * `reconnect()` finds out what became of each container while the daemon was down.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXIT_CODE_UNKNOWN, formatLogTime, type ExitInfo, type RuntimeStateInfo, type RuntimeStatus } from '@berth/core';
import { pidAlive, readPidFile, waitGone } from './conmon.js';
import type { ExecEntry } from './exec.js';
import type { Pump } from './log-pump.js';
import { lostExitCode, procRef, readExitCode, stillRunning, type ProcRef } from './monitor.js';
import type { Reaper } from './reaper.js';
import { conmonArgs, type ContainerMeta } from './record.js';

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
  warn(msg: string, err?: unknown): void;
  /** berthd as a child subreaper (reaper.ts): the exits of orphaned inits and monitors; null in library mode. */
  reaper?: Reaper | null;
}

export interface ExecEnd {
  code: number;
  lost: boolean;
  known?: boolean;
}

/** One exec session being watched (ExitWatch.watchExec). */
export interface ExecWatch {
  /**
   * Resolves once the exec is over: its code, `lost` when its monitor died without writing one
   * (`known`: the code is still the real one — the kernel or the subreaper had it).
   */
  readonly ended: Promise<ExecEnd>;
  /** conmon reported: from now on, its death without an exit file ends the exec. */
  monitored(monitor: ProcRef | null, process: ProcRef | null): void;
  /** Stop watching (the exec could not start); `ended` never resolves. */
  cancel(): void;
}

interface ExecWatchState {
  exitFile: string;
  monitor?: ProcRef | null;
  process: ProcRef | null;
  watcher?: fs.FSWatcher;
  done(v: ExecEnd): void;
}

export class ExitWatch {
  private watcher: fs.FSWatcher | null = null;
  private safetyTimer: NodeJS.Timeout | null = null;
  private lostTimer: NodeJS.Timeout | null = null;
  private readonly execWatches = new Set<ExecWatchState>();

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
    for (const w of this.execWatches) this.checkExec(w);
    for (const t of this.host.tracked.values()) {
      this.checkExit(t.meta.id);
      this.checkMonitor(t);
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
   * EXIT_CODE_UNKNOWN logged as unknown).
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
        const { code, known } = lostExitCode(t.init, !!t.sigkilled, this.reapedCode(t.init));
        if (!known) this.host.warn(`container ${id} exited while its monitor was gone: its exit code is unknown, reported as ${code}`);
        this.host.exited(t, { id, exitCode: code, oomKilled: false, exitedAt: new Date().toISOString() });
      });
  }

  /**
   * Watch an exec session's exit dir (call before its conmon starts, so that no exit is
   * missed). Its exit file ends it; so does its monitor's death without one, once the exec's
   * process is gone too (the code is then the kernel's if it still holds it, else unknown).
   */
  watchExec(exitDir: string, exitFile: string): ExecWatch {
    let resolve!: (v: ExecEnd) => void;
    const ended = new Promise<ExecEnd>((r) => (resolve = r));
    const w: ExecWatchState = {
      exitFile,
      process: null,
      done: (v) => {
        stop();
        this.release(w.process);
        resolve(v);
      },
    };
    const stop = (): void => {
      w.watcher?.close();
      this.execWatches.delete(w);
    };
    try {
      w.watcher = fs.watch(exitDir, () => this.checkExec(w));
    } catch {
      /* the safety poll */
    }
    this.execWatches.add(w);
    return {
      ended,
      monitored: (monitor, proc) => {
        w.monitor = monitor;
        w.process = proc;
        this.checkExec(w);
      },
      cancel: stop,
    };
  }

  private checkExec(w: ExecWatchState): void {
    if (!this.execWatches.has(w)) return;
    const code = readExitCode(w.exitFile);
    if (code !== null) return w.done({ code, lost: false });
    if (w.monitor === undefined || stillRunning(w.monitor)) return;
    // The monitor is gone: one more look for the exit file it may have written last.
    const late = readExitCode(w.exitFile);
    if (late !== null) return w.done({ code: late, lost: false });
    if (stillRunning(w.process)) return; // the exec runs on unmonitored; wait for it
    w.done({ ...lostExitCode(w.process, false, this.reapedCode(w.process)), lost: true });
  }

  /**
   * A monitor (conmon, from its pid file) and the process it reported (a container's init,
   * an exec's process): the subreaper collects them when they become this daemon's children —
   * the monitor when it exits, the process's exit code when its monitor was killed first.
   */
  adopt(monitorPid: number, proc: ProcRef | null | undefined): void {
    this.host.reaper?.watch(monitorPid);
    if (proc) this.host.reaper?.watch(proc.pid, { start: proc.start, keep: true });
  }

  /** The process's exit is reported: the subreaper need not keep it. */
  release(proc: ProcRef | null | undefined): void {
    if (proc) this.host.reaper?.forget(proc.pid);
  }

  /** The subreaper collected `pid`: look at what it belonged to now, not at the next poll. */
  reaped(pid: number): void {
    for (const t of this.host.tracked.values()) if (t.monitor?.pid === pid || t.init?.pid === pid) this.checkMonitor(t);
    for (const w of this.execWatches) if (w.monitor?.pid === pid || w.process?.pid === pid) this.checkExec(w);
  }

  /** The exit code the subreaper collected for this process, if it did. */
  private reapedCode(proc: ProcRef | null | undefined): number | undefined {
    if (!proc || !this.host.reaper) return undefined;
    this.host.reaper.sweep();
    return this.host.reaper.exitOf(proc.pid, proc.start)?.code;
  }

  /**
   * After a daemon restart: what became of a container while the daemon was down — its exit
   * file, else its monitor and the runtime's word. Gone without either, its exit code is lost
   * (EXIT_CODE_UNKNOWN, logged). A container still running gets its log pump started, and is
   * watched without its monitor if that was killed.
   */
  async reconnect(t: Tracked): Promise<RuntimeStateInfo> {
    const { id, bundle } = t.meta;
    const stopped = (exit: ExitInfo): RuntimeStateInfo => {
      t.exit = exit;
      t.pump.stop(); // catch up on what the container wrote while the daemon was down
      return { id, status: 'stopped', pid: 0, exit };
    };
    const exit = this.readExit(t.meta);
    if (exit) return stopped(exit);
    t.pump.start();
    const conmonPid = readPidFile(path.join(bundle, 'conmon.pid'));
    t.monitor = conmonArgs(conmonPid, id) ? procRef(conmonPid) : null;
    const st = await this.host.runtimeState(t.meta);
    if (st && st.status !== 'stopped') {
      // The monitor may have exited between our read and now: look once more.
      this.checkExit(id);
      if (t.exit) return { id, status: 'stopped', pid: 0, exit: t.exit };
      t.init = procRef(st.pid);
      // Running without a monitor (it was killed): berth watches the process from now on.
      if (!t.monitor) this.checkMonitor(t);
      return { id, status: st.status, pid: st.pid };
    }
    if (pidAlive(conmonPid)) {
      // conmon is writing the exit file right now.
      await waitGone(conmonPid, 2000);
      const late = this.readExit(t.meta);
      if (late) return stopped(late);
    }
    // No monitor and no exit file (the monitor was killed): the exit code is lost.
    this.host.warn(`container ${id} exited while its monitor was gone: its exit code is unknown, reported as ${EXIT_CODE_UNKNOWN}`);
    return stopped({ id, exitCode: EXIT_CODE_UNKNOWN, oomKilled: false, exitedAt: new Date().toISOString() });
  }

  readExit(meta: ContainerMeta): ExitInfo | null {
    const file = path.join(this.host.exitsDir, meta.id);
    const code = readExitCode(file);
    let st: fs.BigIntStats;
    try {
      st = fs.statSync(file, { bigint: true });
    } catch {
      return null;
    }
    if (code === null) return null;
    return {
      id: meta.id,
      exitCode: code,
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
    for (const w of this.execWatches) w.watcher?.close();
    this.execWatches.clear();
    for (const timer of [this.safetyTimer, this.lostTimer]) if (timer) clearInterval(timer);
    this.safetyTimer = null;
    this.lostTimer = null;
  }
}
