/**
 * Exec sessions of the OCI backend: one conmon per exec (`--exec --exec-attach`, its command line
 * from conmon.ts's one builder), its files in `<bundle>/exec/<execId>/` and conmon's short link
 * `s/<execId>` to that dir. Their exits are seen by the backend's one exit watcher (exits.ts):
 * the exit file conmon writes, or its monitor dying without one (killed: the exit code is then
 * the kernel's if still there, else the unknown-exit code, logged). An exec that ends loses its
 * link at once; its dir, with the exit file, stays until the engine has saved that exit
 * (`deleteExec`) or the container goes — so a daemon killed in between still finds the code.
 * After a restart the restore follows every exec dir again with the same watcher: an exec that
 * ended meanwhile is reported from its exit file, one still running when it ends
 * (`restoreExec` tells the engine which). A failed start removes both at once. Links whose
 * target is gone are swept when the backend starts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  SystemError,
  atomicWriteFile,
  declareFailpoint,
  errorKind,
  failpoint,
  formatLogTime,
  type AttachSession,
  type ExecOptions,
  type ExecSession,
  type ExecStateInfo,
  type ExitInfo,
} from '@berth/core';
import { attachSocket } from './attach.js';
import { conmonArgv, readPidFile, spawnConmon, waitGone } from './conmon.js';
import type { ExecWatch, ExitWatch, Tracked } from './exits.js';
import { listDir } from './files.js';
import { procRef, stillRunning, type ProcRef } from './monitor.js';
import { EXEC_ROOT_WRITE, conmonArgs } from './record.js';

const FP_AFTER_RUNTIME_EXEC = declareFailpoint(
  'exec.afterRuntimeExec',
  'runtime-oci exec: the exec process runs under its conmon, before the backend has recorded the session',
);

/** One exec the backend knows of; `exit` once it is over (kept until deleteExec). */
export interface ExecEntry {
  dir: string;
  pid: number;
  conmonPid: number;
  exit?: ExitInfo;
}

/** Remove an exec's dir and its `s/` link. */
export function removeExecFiles(sockDir: string, dir: string, execId: string): void {
  fs.rmSync(path.join(sockDir, execId), { force: true });
  fs.rmSync(dir, { recursive: true, force: true });
}

/** What exec sessions need from the backend. */
export interface ExecHost {
  conmonPath: string;
  /** `<execRoot>/oci/s`: conmon's short links. */
  sockDir: string;
  /** The backend's one exit watcher (containers and execs). */
  exits: ExitWatch;
  emitExit(exit: ExitInfo): void;
  warn(msg: string, err?: unknown): void;
}

/** The exec sessions of every container of one backend; each container's live ones are in `Tracked.execs`. */
export class ExecSessions {
  constructor(private readonly host: ExecHost) {}

  /** Start an exec under its own conmon; `exited` resolves with its exit code once it is over. */
  async start(t: Tracked, opts: ExecOptions): Promise<ExecSession> {
    const { host } = this;
    const id = t.meta.id;
    const dir = path.join(t.meta.bundle, 'exec', opts.execId);
    const exitDir = path.join(dir, 'exit');
    fs.mkdirSync(exitDir, { recursive: true, mode: 0o700 });
    const spec = { ...opts.process, terminal: opts.tty };
    await atomicWriteFile(path.join(dir, 'process.json'), JSON.stringify(spec), EXEC_ROOT_WRITE);
    const args = conmonArgv({
      containerId: id,
      exec: { execId: opts.execId, processSpec: path.join(dir, 'process.json') },
      runtimePath: t.meta.runtimePath,
      runtimeArgs: t.meta.globalArgs,
      dir,
      pidFile: path.join(dir, 'pid'),
      log: 'none',
      exitDir,
      sockDir: host.sockDir,
      tty: opts.tty,
      openStdin: opts.openStdin,
    });
    let session: AttachSession | undefined;
    const exitFile = execExitFile(dir, id);
    const watch = host.exits.watchExec(exitDir, exitFile);
    let pid = 0;
    try {
      pid = await spawnConmon({
        conmonPath: host.conmonPath,
        args,
        stderrFile: path.join(dir, 'conmon.err'),
        cwd: dir,
        onAttachReady: async () => {
          session = await attachSocket(path.join(host.sockDir, opts.execId, 'attach'), opts.streams, opts.tty);
        },
      });
      failpoint(FP_AFTER_RUNTIME_EXEC);
    } catch (err) {
      watch.cancel();
      session?.detach();
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL'); // started, but the session cannot go on
        } catch {
          /* gone */
        }
      }
      removeExecFiles(host.sockDir, dir, opts.execId);
      throw translateExecError(err);
    }
    const conmonPid = readPidFile(path.join(dir, 'conmon.pid'));
    const proc = procRef(pid);
    this.host.exits.adopt(conmonPid, proc);
    const exitedAfterOutput = this.follow(t, opts.execId, { dir, pid, conmonPid }, watch, procRef(conmonPid), proc, session);
    const kill = async (signal: number): Promise<void> => {
      // only this very process (same pid, same start time): never a reused pid
      if (!stillRunning(proc)) return;
      try {
        process.kill(pid, signal);
      } catch {
        /* gone meanwhile */
      }
    };
    return { pid, exited: exitedAfterOutput, kill };
  }

  /**
   * Watch an exec until it ends (its exit file, or its monitor gone and its process too), then
   * report the exit once, keep it in the entry and remove the attach link. `session`: the
   * attach session whose last output goes first.
   */
  private follow(t: Tracked, execId: string, entry: ExecEntry, watch: ExecWatch, monitor: ProcRef | null, proc: ProcRef | null, session?: AttachSession): Promise<number> {
    const { host } = this;
    const id = t.meta.id;
    t.execs.set(execId, entry);
    watch.monitored(monitor, proc);
    return watch.ended.then(async ({ code, lost, known }) => {
      if (lost) host.warn(`monitor of exec ${execId} in container ${id} is gone without reporting an exit (killed?): its exit code is ${known ? code : `unknown, reported as ${code}`}`);
      // Output arrives on the attach socket before conmon writes the exit file; give the
      // socket a moment to deliver what is in flight.
      if (session) await Promise.race([session.done, new Promise((r) => setTimeout(r, lost ? 0 : 1000))]);
      if (lost) session?.detach();
      let exitedAt: string;
      try {
        exitedAt = formatLogTime(fs.statSync(execExitFile(entry.dir, id), { bigint: true }).mtimeNs);
      } catch {
        exitedAt = new Date().toISOString();
      }
      entry.exit = { id, execId, exitCode: code, oomKilled: false, exitedAt };
      fs.rmSync(path.join(host.sockDir, execId), { force: true });
      host.emitExit(entry.exit);
      return code;
    });
  }

  /** What the backend knows of an exec (RuntimeBackend.restoreExec): running, its exit, or null. */
  state(t: Tracked | undefined, execId: string): ExecStateInfo | null {
    const ex = t?.execs.get(execId);
    if (!ex) return null;
    if (ex.exit) return { status: 'stopped', pid: 0, exitCode: ex.exit.exitCode, exitedAt: ex.exit.exitedAt };
    return { status: 'running', pid: ex.pid };
  }

  /** The engine saved the exec's exit (RuntimeBackend.deleteExec): remove its files. A running exec is left alone. */
  forget(t: Tracked | undefined, execId: string): void {
    const ex = t?.execs.get(execId);
    if (!t || !ex?.exit) return;
    t.execs.delete(execId);
    removeExecFiles(this.host.sockDir, ex.dir, execId);
  }

  /** The container goes away: SIGKILL its exec processes that still run (their monitors then exit). */
  killAll(t: Tracked | undefined): void {
    for (const ex of t?.execs.values() ?? []) {
      if (ex.exit) continue;
      try {
        process.kill(ex.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  /** After killAll and the container's delete: wait for the exec monitors, remove their links. */
  async removeAll(t: Tracked | undefined, bundle: string): Promise<void> {
    for (const ex of t?.execs.values() ?? []) if (ex.conmonPid > 0) await waitGone(ex.conmonPid, 2000);
    for (const ex of t?.execs.keys() ?? []) fs.rmSync(path.join(this.host.sockDir, ex), { force: true });
    for (const ex of listDir(path.join(bundle, 'exec'))) fs.rmSync(path.join(this.host.sockDir, ex), { force: true });
  }
  /**
   * After a daemon restart: every exec dir of the container is followed again (no session waits
   * for it): its exit file, else its monitor (when it is this exec's conmon) and its process. One
   * that never got a process (a start cut short before conmon reported) is removed at once.
   */
  restore(t: Tracked): void {
    const { bundle, id } = t.meta;
    for (const execId of listDir(path.join(bundle, 'exec'))) {
      if (t.execs.has(execId)) continue;
      const dir = path.join(bundle, 'exec', execId);
      const exitFile = execExitFile(dir, id);
      const pid = readPidFile(path.join(dir, 'pid'));
      if (!fs.existsSync(exitFile) && !(pid > 0)) {
        removeExecFiles(this.host.sockDir, dir, execId);
        continue;
      }
      const conmonPid = readPidFile(path.join(dir, 'conmon.pid'));
      const args = conmonArgs(conmonPid, id);
      const monitor = args && args[args.indexOf('-u') + 1] === execId ? procRef(conmonPid) : null;
      const watch = this.host.exits.watchExec(path.dirname(exitFile), exitFile);
      void this.follow(t, execId, { dir, pid, conmonPid }, watch, monitor, procRef(pid));
    }
  }
}

/** conmon names an exec's exit file after the container, in the exec dir's `exit/`. */
function execExitFile(dir: string, containerId: string): string {
  return path.join(dir, 'exit', containerId);
}

/** An exec the runtime refused, in containerd's words ("OCI runtime exec failed: …", as dockerd shows it). */
function translateExecError(err: unknown): Error {
  if (errorKind(err) !== 'System' || !(err instanceof Error)) return err as Error;
  return new SystemError(`OCI runtime exec failed: ${err.message}`, { cause: err });
}

/** Remove the links in `s/` whose target (a bundle or an exec dir) is gone. */
export function sweepDanglingLinks(sockDir: string, warn: (msg: string) => void): void {
  let names: string[];
  try {
    names = fs.readdirSync(sockDir);
  } catch {
    return;
  }
  const swept: string[] = [];
  for (const name of names) {
    const link = path.join(sockDir, name);
    try {
      if (!fs.lstatSync(link).isSymbolicLink() || fs.existsSync(link)) continue;
      fs.rmSync(link, { force: true });
      swept.push(name);
    } catch {
      /* raced with a removal */
    }
  }
  if (swept.length) warn(`removed ${swept.length} attach link(s) whose container or exec is gone: ${swept.join(', ')}`);
}
