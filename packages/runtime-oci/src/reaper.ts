/**
 * berthd as a child subreaper: the real exit code of a container whose conmon was killed.
 *
 * conmon daemonises (its first process exits), so its monitor process is re-parented; and the
 * container's init is conmon's child. With PR_SET_CHILD_SUBREAPER set on the daemon, both are
 * re-parented to the daemon instead of to pid 1: a killed conmon's init becomes the daemon's
 * child, and its exit status is the daemon's to collect — the real code, not 255.
 *
 * The rule for what is waited for (libuv reaps only the children it spawned, by pid, and a
 * child it spawned that someone else reaps never gets its 'exit'): the reaper waits for KNOWN
 * pids only, never with waitpid(-1):
 *   - conmon's monitor pid, from conmon's pid file (`-P`): the daemonised process, never the
 *     one the daemon spawned (that one exits at once and is waited for by libuv or the addon);
 *   - the container's init pid, as conmon reports it from the runtime's pid file;
 *   - an exec's process pid and its conmon's pid, the same way.
 * Each is named by a pidfd opened when the pid is learnt (while the process cannot have been
 * reaped: a conmon is then the daemon's own child, an init is conmon's), so a recycled pid is
 * never waited for. waitid(P_PIDFD, WNOHANG) collects one process exactly, never blocks and
 * answers ECHILD while the process is someone else's child (an init whose conmon lives).
 * Sweeps run on SIGCHLD and every second (signals coalesce); an entry whose process was reaped
 * by another parent (conmon reaped its init) is dropped and its fd closed; one that is a
 * zombie of another parent is kept (if that parent dies first, the zombie becomes ours). Nothing else the daemon
 * inherits as a subreaper is waited for: a helper that daemonises must be reaped by who
 * started it (docs/reliability.md).
 *
 * A library must not change its host process's reaping: the subreaper is an explicit option
 * (OciBackendOptions.subreaper, on in berthd, off by default). The prctl is a property of the
 * whole process, so it is counted here (the only module-level state: one per process, not per
 * engine) and cleared when the last reaper closes.
 */
import * as fs from 'node:fs';
import { errnoName, nativeAddon, type NativeAddon } from '@berth/native';
import { procRef } from './monitor.js';

export interface ReapedExit {
  pid: number;
  /** The shell's convention: the exit status, or 128 + the signal. */
  code: number;
  status: number | null;
  signal: number | null;
}

interface Entry {
  fd: number;
  /** The start time the watcher gave (ProcRef.start), '' when none. */
  start: string;
  /** Keep the exit once collected, for exitOf(), until forget(). */
  keep: boolean;
  exit?: ReapedExit;
}

export interface WatchOptions {
  /** The start time the caller saw (ProcRef.start): a different process under that pid is not watched. */
  start?: string;
  /** Keep the collected exit for exitOf() until forget() (a container's init, an exec's process). */
  keep?: boolean;
}

export interface ReaperOptions {
  /** A watched process was collected (its exit is in exitOf() until forget()). */
  reaped?: (exit: ReapedExit) => void;
  warn: (msg: string, err?: unknown) => void;
  /** The addon (tests); default: @berth/native's. */
  native?: NativeAddon;
}

let subreaperUsers = 0;

export class Reaper {
  private readonly entries = new Map<number, Entry>();
  private readonly onSigchld = (): void => this.sweep();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  private constructor(
    private readonly native: NativeAddon,
    private readonly opts: ReaperOptions,
  ) {
    process.on('SIGCHLD', this.onSigchld);
    this.timer = setInterval(() => this.sweep(), 1000);
    this.timer.unref();
  }

  /**
   * Make this process a child subreaper and start collecting; null (with a warning saying
   * why) where the addon is missing or the kernel refuses: exits are then reported as before.
   */
  static start(opts: ReaperOptions): Reaper | null {
    const native = opts.native ?? nativeAddon();
    if (!native) {
      opts.warn('subreaper off: the native addon is not loaded; the exit code of a container whose monitor is killed may be unknown');
      return null;
    }
    try {
      if (subreaperUsers === 0) native.setChildSubreaper(true);
    } catch (err) {
      opts.warn('subreaper off: prctl(PR_SET_CHILD_SUBREAPER) failed; the exit code of a container whose monitor is killed may be unknown', err);
      return null;
    }
    subreaperUsers++;
    return new Reaper(native, opts);
  }

  /** Watch a process the rule above allows (see the header); a pid already gone is ignored. */
  watch(pid: number, opts: WatchOptions = {}): void {
    if (this.closed || !(pid > 0)) return;
    const old = this.entries.get(pid);
    if (old && !old.exit) return; // already watched
    // A kept exit under this pid belongs to an earlier process (the pid was reused): it goes.
    if (old) this.entries.delete(pid);
    let fd: number;
    try {
      fd = this.native.pidfdOpen(pid);
    } catch (err) {
      if (errnoName(err) !== 'ESRCH') this.opts.warn(`cannot watch process ${pid} for its exit`, err);
      return;
    }
    const e: Entry = { fd, start: opts.start ?? '', keep: !!opts.keep };
    // The pidfd names whatever has this pid now: it must be the process the caller saw.
    if (opts.start && procRef(pid)?.start !== opts.start) return this.closeFd(e);
    this.entries.set(pid, e);
    this.collect(pid);
  }

  /** The exit collected for `pid` (that very process when `start` is given), if this reaper collected it. */
  exitOf(pid: number | undefined, start?: string): ReapedExit | undefined {
    const e = pid === undefined ? undefined : this.entries.get(pid);
    if (!e || (start && e.start && start !== e.start)) return undefined;
    return e.exit;
  }

  /**
   * Drop the collected exit of `pid`; a process still running stays watched (no exit kept),
   * so that it leaves no zombie when it ends.
   */
  forget(pid: number | undefined): void {
    const e = pid === undefined ? undefined : this.entries.get(pid);
    if (!e) return;
    e.keep = false;
    if (e.exit) this.entries.delete(pid!);
    else this.collect(pid!);
  }

  /** Collect every watched process that has exited and is this process's child. */
  sweep(): void {
    for (const pid of [...this.entries.keys()]) this.collect(pid);
  }

  /** How many processes are watched (not yet collected or dropped): for tests and leak checks. */
  watching(): number {
    let n = 0;
    for (const e of this.entries.values()) if (!e.exit) n++;
    return n;
  }

  private collect(pid: number): void {
    const e = this.entries.get(pid);
    if (!e || e.exit) return;
    let r;
    try {
      r = this.native.waitPidfd(e.fd);
    } catch (err) {
      if (errnoName(err) !== 'ECHILD') {
        this.opts.warn(`waiting for process ${pid} failed; no longer watched`, err);
      } else if (!gone(e.fd, pid)) {
        return; // someone else's child (an init whose conmon lives), or its zombie: keep watching
      }
      // Gone, and not ours to collect: its parent reaped it.
      this.closeFd(e);
      this.entries.delete(pid);
      return;
    }
    if (!r) return;
    this.closeFd(e);
    e.exit = { pid, code: r.signal !== null ? 128 + r.signal : (r.status ?? 0), status: r.status, signal: r.signal };
    if (!e.keep) this.entries.delete(pid);
    try {
      this.opts.reaped?.(e.exit);
    } catch (err) {
      this.opts.warn('reaped-process listener failed', err);
    }
  }

  private closeFd(e: Entry): void {
    if (e.fd < 0) return;
    try {
      fs.closeSync(e.fd);
    } catch {
      /* already closed */
    }
    e.fd = -1;
  }

  /** Stop collecting; the last reaper of the process clears the subreaper flag. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    process.off('SIGCHLD', this.onSigchld);
    clearInterval(this.timer);
    this.sweep(); // what exited meanwhile leaves no zombie
    for (const e of this.entries.values()) this.closeFd(e);
    this.entries.clear();
    if (--subreaperUsers === 0) {
      try {
        this.native.setChildSubreaper(false);
      } catch (err) {
        this.opts.warn('clearing the subreaper flag failed', err);
      }
    }
  }
}

/**
 * The pidfd's process was reaped (by its parent): the kernel shows `Pid: -1` in the pidfd's
 * fdinfo then. A zombie still shows its pid (it may yet become ours). Where fdinfo says
 * nothing, whether the pid still exists (a pid number can be reused once reaped, so this is
 * the weaker test).
 */
function gone(fd: number, pid: number): boolean {
  try {
    const m = /^Pid:\s*(-?\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    if (m) return m[1] === '-1';
  } catch {
    /* fall through */
  }
  return !fs.existsSync(`/proc/${pid}`);
}
