/** conmon's command line (one builder for containers and exec sessions), spawning it and reading its sync pipe. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SystemError, signalName } from '@berth/core';
import { envp, nativeAddon } from '@berth/native';
import { procRef } from './monitor.js';
import { runtimeErrorMessage } from './runtime-cli.js';

export interface ConmonSpawnOptions {
  conmonPath: string;
  args: string[];
  /** File that receives conmon's own stderr (kept for error messages). */
  stderrFile: string;
  /** conmon's working directory (it writes its `oom` marker there): the bundle. */
  cwd: string;
  timeoutMs?: number;
  /**
   * Exec attach handshake (conmon --exec-attach): called once conmon's attach socket is
   * ready; resolve after connecting, and conmon starts the process.
   */
  onAttachReady?: () => Promise<void>;
}

/** What conmon's command line is made of, for a container or for one exec session in it. */
export interface ConmonArgvOptions {
  containerId: string;
  /** Set for an exec session: conmon runs `RUNTIME exec` with this process spec (`--exec-attach`). */
  exec?: { execId: string; processSpec: string };
  runtimePath: string;
  /** The runtime's global arguments (`--root` …), each passed as `--runtime-arg`. */
  runtimeArgs: string[];
  /** The bundle, or the exec session's dir: conmon's `conmon.pid` (and the container's `--persist-dir`) live there. */
  dir: string;
  /** Where conmon writes the process's pid. */
  pidFile: string;
  /** `k8s-file:<path>` or `none`. */
  log: string;
  exitDir: string;
  sockDir: string;
  tty: boolean;
  openStdin: boolean;
  /** Keep stdin open after the first attach detaches (containers without StdinOnce). */
  leaveStdinOpen?: boolean;
  /**
   * Restore from this checkpoint dir instead of creating (a container's conmon only): conmon
   * runs `RUNTIME restore --bundle B --pid-file P [--no-pivot] --detach --image-path DIR
   * --work-path B ID` (CRIU's restore.log lands in the bundle) and reports the pid once the
   * restored container runs; from there it monitors it as a created one (exit file, logs, attach).
   */
  restoreFrom?: string;
  /** The runtime's create without pivot_root (`--no-pivot`: RuntimeCreateOptions.noPivotRoot). */
  noPivot?: boolean;
}

/** conmon's argv (without argv[0]) for a container's create or for an exec session. */
export function conmonArgv(o: ConmonArgvOptions): string[] {
  const args = [
    '--api-version', '1',
    '-c', o.containerId, '-u', o.exec?.execId ?? o.containerId, '-n', o.containerId,
    '-r', o.runtimePath,
    '-b', o.dir,
    '-p', o.pidFile,
    '-P', path.join(o.dir, 'conmon.pid'),
    '-l', o.log,
    '--exit-dir', o.exitDir,
    '--socket-dir-path', o.sockDir,
  ];
  if (o.exec) args.push('--exec', '--exec-process-spec', o.exec.processSpec, '--exec-attach');
  else args.push('--persist-dir', o.dir);
  args.push('--log-level', 'error');
  for (const a of o.runtimeArgs) args.push('--runtime-arg', a);
  if (o.tty) args.push('-t');
  if (o.openStdin) {
    args.push('-i');
    if (o.leaveStdinOpen) args.push('--leave-stdin-open');
  }
  if (o.restoreFrom && !o.exec) args.push('--restore', o.restoreFrom);
  if (o.noPivot && !o.exec) args.push('--no-pivot');
  return args;
}

/** conmon's stderr file, without its noise (oom_score_adj warnings). */
function conmonErrors(file: string): string {
  try {
    return fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l && !/oom_score_adj/.test(l))
      .join('; ');
  } catch {
    return '';
  }
}

/** One message of conmon's sync pipe: the pid, or an error with conmon's words. */
function syncMessage(line: string, readErr: () => string): number | Error | null {
  let msg: { data?: number; pid?: number; message?: string };
  try {
    msg = JSON.parse(line) as typeof msg;
  } catch {
    return null;
  }
  const pid = msg.data ?? msg.pid;
  if (typeof pid === 'number' && pid > 0) return pid;
  // conmon passes the runtime's log line on (`time=… level=error msg="…"`): keep the message.
  return new SystemError(msg.message ? runtimeErrorMessage(msg.message) || msg.message.trim() : `conmon reported failure ${line} ${readErr()}`);
}

/** The container (or exec) pid conmon reports on the sync pipe, or an error with its message. */
export function spawnConmon(opts: ConmonSpawnOptions): Promise<number> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const readErr = (): string => conmonErrors(opts.stderrFile);
  const native = !opts.onAttachReady && path.isAbsolute(opts.conmonPath) ? nativeAddon() : null;
  if (native) {
    // posix_spawn through the addon: no fork of the daemon, no blocked event loop.
    return native.spawnMonitor(opts.conmonPath, [opts.conmonPath, ...opts.args], envp({ ...process.env, _OCI_SYNCPIPE: '3' }), opts.cwd, opts.stderrFile, timeoutMs).then(
      (r) => {
        for (const raw of r.sync.split('\n')) {
          const line = raw.trim();
          const m = line ? syncMessage(line, readErr) : null;
          if (typeof m === 'number') return m;
          if (m) throw m;
        }
        if (r.timedOut) throw new SystemError(`conmon did not report the container pid within ${timeoutMs} ms ${readErr()}`);
        if (r.status !== 0) throw new SystemError(`conmon exited with ${r.status ?? signalName(r.signal ?? 0)}: ${readErr() || 'no output'}`);
        throw new SystemError(`conmon closed the sync pipe without a pid: ${readErr() || 'no output'}`);
      },
      (err: unknown) => {
        throw new SystemError(`cannot run conmon (${opts.conmonPath}): ${(err as Error).message}`, { cause: err });
      },
    );
  }
  const errFd = fs.openSync(opts.stderrFile, 'w', 0o600);
  const withAttach = !!opts.onAttachReady;
  const env: NodeJS.ProcessEnv = { ...process.env, _OCI_SYNCPIPE: '3' };
  if (withAttach) {
    env._OCI_STARTPIPE = '4';
    env._OCI_ATTACHPIPE = '5';
  }
  let child: import('node:child_process').ChildProcess;
  try {
    child = spawn(opts.conmonPath, opts.args, {
      stdio: withAttach ? ['ignore', errFd, errFd, 'pipe', 'pipe', 'pipe'] : ['ignore', errFd, errFd, 'pipe'],
      env,
      cwd: opts.cwd,
      detached: true,
    });
  } finally {
    fs.closeSync(errFd);
  }
  const stdio = child.stdio as unknown as unknown[];
  return new Promise<number>((resolve, reject) => {
    let settled = false;
    let buf = '';
    const sync = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
    const finish = (err: Error | null, pid?: number): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sync.removeAllListeners('data');
      sync.destroy();
      if (withAttach) {
        (child.stdio[4] as unknown as { destroy(): void }).destroy();
        (stdio[5] as unknown as { destroy(): void }).destroy();
      }
      child.unref();
      if (err) reject(err);
      else resolve(pid!);
    };
    const timer = setTimeout(() => {
      finish(new SystemError(`conmon did not report the container pid within ${timeoutMs} ms ${readErr()}`));
    }, timeoutMs);
    child.on('error', (err) => finish(new SystemError(`cannot run conmon (${opts.conmonPath}): ${err.message}`, { cause: err })));
    child.on('exit', (code, signal) => {
      if (code !== 0) {
        // The daemonising parent failed before conmon could report on the sync pipe.
        setTimeout(() => finish(new SystemError(`conmon exited with ${code ?? signal}: ${readErr() || 'no output'}`)), 50);
      }
    });
    sync.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const m = syncMessage(line, readErr);
        if (m === null) continue;
        if (typeof m === 'number') finish(null, m);
        else finish(m);
      }
    });
    sync.on('end', () => {
      setTimeout(() => finish(new SystemError(`conmon closed the sync pipe without a pid: ${readErr() || 'no output'}`)), 50);
    });
    if (withAttach) {
      const start = child.stdio[4] as NodeJS.WritableStream;
      const attach = stdio[5] as unknown as NodeJS.ReadableStream;
      start.write(Buffer.from([0]));
      attach.once('data', () => {
        opts.onAttachReady!().then(
          () => start.write(Buffer.from([0])),
          (err: unknown) => {
            child.kill('SIGKILL');
            finish(err instanceof Error ? err : new SystemError(String(err)));
          },
        );
      });
    }
  });
}

/** Is a process alive (and not a zombie)? */
export function pidAlive(pid: number): boolean {
  return procRef(pid) !== null;
}

export function readPidFile(file: string): number {
  try {
    const n = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isFinite(n) ? n : 0;
  } catch {
    return 0;
  }
}

/** Wait until a process is gone; SIGKILL it after `graceMs`. */
export async function waitGone(pid: number, graceMs: number): Promise<void> {
  const deadline = Date.now() + graceMs;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      const hard = Date.now() + 2000;
      while (pidAlive(pid) && Date.now() < hard) await new Promise((r) => setTimeout(r, 10));
      return;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}
