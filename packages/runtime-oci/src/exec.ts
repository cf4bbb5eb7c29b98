/**
 * Exec sessions of the OCI backend: one conmon per exec (`--exec --exec-attach`), its files in
 * `<bundle>/exec/<execId>/` and conmon's short link `s/<execId>` to that dir. Every way an exec
 * can end removes both: its exit file, its monitor dying without one (killed: the exit code is
 * then the kernel's if still there, else 255 logged as unknown), a failed start, and — after a
 * daemon restart, when no session is left to wait for it — the restore, which removes those whose
 * monitor is gone and watches the others until theirs is. Links whose target is gone are swept
 * when the backend starts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { atomicWriteFile, declareFailpoint, failpoint, formatLogTime, type ExecOptions, type ExecSession, type ExitInfo, type AttachSession } from '@berth/core';
import { attachSocket } from './attach.js';
import { readPidFile, spawnConmon } from './conmon.js';
import { lostExitCode, procRef, stillRunning, type ProcRef } from './monitor.js';
import { EXEC_ROOT_WRITE, conmonArgs } from './record.js';

const FP_AFTER_RUNTIME_EXEC = declareFailpoint(
  'exec.afterRuntimeExec',
  'runtime-oci exec: the exec process runs under its conmon, before the backend has recorded the session',
);

/** One exec the backend knows of. `orphan`: found at restore, its monitor watched until gone. */
export interface ExecEntry {
  dir: string;
  pid: number;
  conmonPid: number;
  orphan?: ProcRef;
}

export interface ExecContext {
  conmonPath: string;
  /** `<execRoot>/oci/s`: conmon's short links. */
  sockDir: string;
  containerId: string;
  bundle: string;
  runtimePath: string;
  globalArgs: string[];
  execs: Map<string, ExecEntry>;
  emitExit(exit: ExitInfo): void;
  warn(msg: string, err?: unknown): void;
  translateError(err: unknown): Error;
}

/** Remove an exec's dir and its `s/` link. */
export function removeExecFiles(sockDir: string, dir: string, execId: string): void {
  fs.rmSync(path.join(sockDir, execId), { force: true });
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Start an exec under its own conmon; `exited` resolves with its exit code once it is over. */
export async function startExec(ctx: ExecContext, opts: ExecOptions): Promise<ExecSession> {
  const id = ctx.containerId;
  const dir = path.join(ctx.bundle, 'exec', opts.execId);
  fs.mkdirSync(path.join(dir, 'exit'), { recursive: true, mode: 0o700 });
  const spec = { ...opts.process, terminal: opts.tty };
  await atomicWriteFile(path.join(dir, 'process.json'), JSON.stringify(spec), EXEC_ROOT_WRITE);
  const args = [
    '--api-version', '1',
    '-c', id, '-u', opts.execId, '-n', id,
    '-r', ctx.runtimePath,
    '-b', dir,
    '-p', path.join(dir, 'pid'),
    '-P', path.join(dir, 'conmon.pid'),
    '-l', 'none',
    '--exit-dir', path.join(dir, 'exit'),
    '--socket-dir-path', ctx.sockDir,
    '--exec', '--exec-process-spec', path.join(dir, 'process.json'),
    '--exec-attach',
    '--log-level', 'error',
  ];
  for (const a of ctx.globalArgs) args.push('--runtime-arg', a);
  if (opts.tty) args.push('-t');
  if (opts.openStdin) args.push('-i');
  let session: AttachSession | undefined;
  const exitFile = path.join(dir, 'exit', id);
  // Set once conmon reported: from then on, its death without an exit file ends the exec.
  const watched: { monitor?: ProcRef | null; process: ProcRef | null } = { process: null };
  let stopWatching = (): void => {};
  const exited = new Promise<{ code: number; lost: boolean }>((resolve) => {
    let watcher: fs.FSWatcher | undefined;
    const done = (v: { code: number; lost: boolean }): void => {
      watcher?.close();
      clearInterval(poll);
      resolve(v);
    };
    stopWatching = () => {
      watcher?.close();
      clearInterval(poll);
    };
    const read = (): number | null => {
      try {
        const text = fs.readFileSync(exitFile, 'utf8').trim();
        return /^-?\d+$/.test(text) ? Number(text) : null;
      } catch {
        return null;
      }
    };
    const check = (): void => {
      const code = read();
      if (code !== null) return done({ code, lost: false });
      if (watched.monitor === undefined || stillRunning(watched.monitor)) return;
      // The monitor is gone: one more look for the exit file it may have written last.
      const late = read();
      if (late !== null) return done({ code: late, lost: false });
      if (stillRunning(watched.process)) return; // the exec runs on unmonitored; wait for it
      done({ code: lostExitCode(watched.process, false).code, lost: true });
    };
    try {
      watcher = fs.watch(path.join(dir, 'exit'), () => check());
    } catch {
      /* poll below */
    }
    const poll = setInterval(check, 1000);
    poll.unref();
  });
  let pid = 0;
  try {
    pid = await spawnConmon({
      conmonPath: ctx.conmonPath,
      args,
      stderrFile: path.join(dir, 'conmon.err'),
      cwd: dir,
      onAttachReady: async () => {
        session = await attachSocket(path.join(ctx.sockDir, opts.execId, 'attach'), opts.streams, opts.tty);
      },
    });
    failpoint(FP_AFTER_RUNTIME_EXEC);
  } catch (err) {
    stopWatching();
    session?.detach();
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL'); // started, but the session cannot go on
      } catch {
        /* gone */
      }
    }
    removeExecFiles(ctx.sockDir, dir, opts.execId);
    throw ctx.translateError(err);
  }
  const conmonPid = readPidFile(path.join(dir, 'conmon.pid'));
  watched.process = procRef(pid);
  watched.monitor = procRef(conmonPid);
  ctx.execs.set(opts.execId, { dir, pid, conmonPid });
  const exitedAfterOutput = exited.then(async ({ code, lost }) => {
    if (lost) ctx.warn(`monitor of exec ${opts.execId} in container ${id} is gone without reporting an exit (killed?): its exit code is unknown, reported as ${code}`);
    // Output arrives on the attach socket before conmon writes the exit file; give the
    // socket a moment to deliver what is in flight.
    if (session) await Promise.race([session.done, new Promise((r) => setTimeout(r, lost ? 0 : 1000))]);
    if (lost) session?.detach();
    let exitedAt: string;
    try {
      exitedAt = formatLogTime(fs.statSync(exitFile, { bigint: true }).mtimeNs);
    } catch {
      exitedAt = new Date().toISOString();
    }
    ctx.emitExit({ id, execId: opts.execId, exitCode: code, oomKilled: false, exitedAt });
    ctx.execs.delete(opts.execId);
    removeExecFiles(ctx.sockDir, dir, opts.execId);
    return code;
  });
  return { pid, exited: exitedAfterOutput };
}

/**
 * After a daemon restart: the exec dirs of a container have no session waiting for them. Those
 * whose monitor is gone are removed (dir and link) now; the others become orphan entries the
 * caller watches until their monitor is gone.
 */
export function restoreExecs(ctx: Pick<ExecContext, 'sockDir' | 'bundle' | 'containerId' | 'execs'>): void {
  let names: string[];
  try {
    names = fs.readdirSync(path.join(ctx.bundle, 'exec'));
  } catch {
    return;
  }
  for (const execId of names) {
    if (ctx.execs.has(execId)) continue;
    const dir = path.join(ctx.bundle, 'exec', execId);
    const conmonPid = readPidFile(path.join(dir, 'conmon.pid'));
    const args = conmonArgs(conmonPid, ctx.containerId);
    const ref = args && args[args.indexOf('-u') + 1] === execId ? procRef(conmonPid) : null;
    if (ref) ctx.execs.set(execId, { dir, pid: readPidFile(path.join(dir, 'pid')), conmonPid, orphan: ref });
    else removeExecFiles(ctx.sockDir, dir, execId);
  }
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
