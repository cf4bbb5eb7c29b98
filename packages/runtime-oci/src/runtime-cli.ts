/** Running the OCI runtime's command line, with its errors translated to typed ones. */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { ConflictError, NotFoundError, SystemError, errorKind, signalName, type OciState, type RuntimeStatus } from '@berth/core';
import { envp, nativeAddon } from '@berth/native';

export interface RuntimeBinary {
  name: string;
  path: string;
  /** Global arguments placed before the subcommand (daemon.json runtimeArgs, --root). */
  globalArgs: string[];
}

export interface CliResult {
  stdout: string;
  stderr: string;
}

/** The message of an OCI runtime's error output (runc logs `level=error msg="..."`). */
export function runtimeErrorMessage(stderr: string): string {
  const msgs: string[] = [];
  for (const line of stderr.split('\n')) {
    const m = /msg="((?:[^"\\]|\\.)*)"/.exec(line);
    if (m && /level=(error|fatal)/.test(line)) msgs.push(m[1].replace(/\\"/g, '"').replace(/\\\\/g, '\\'));
  }
  if (msgs.length) return msgs.join('; ');
  const trimmed = stderr.trim();
  return trimmed.split('\n').slice(-3).join('; ');
}

/** Map a runtime's failure to an error kind (the runtime's words are all we have here). */
export function classifyRuntimeError(id: string, op: string, message: string, cause?: unknown): Error {
  const text = `${op} ${id}: ${message}`;
  if (/does not exist|not found|no such container/i.test(message)) return new NotFoundError(text, { cause });
  if (/not running|already (finished|stopped)|is paused|not paused|container is stopped|cannot (kill|pause|resume)|already exists/i.test(message)) {
    return new ConflictError(text, { cause });
  }
  return new SystemError(text, { cause });
}

export function runRuntime(
  bin: RuntimeBinary,
  id: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<CliResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const native = opts.input === undefined && path.isAbsolute(bin.path) ? nativeAddon() : null;
  if (native) {
    // posix_spawn through the addon: no fork of the daemon, no blocked event loop.
    return native.run(bin.path, [bin.path, ...bin.globalArgs, ...args], envp(process.env), timeoutMs).then(
      (r) => {
        if (r.status === 0) return { stdout: r.stdout, stderr: r.stderr };
        const how = r.timedOut ? `timed out after ${timeoutMs} ms` : r.signal !== null ? `killed by ${signalName(r.signal)}` : `exit status ${r.status}`;
        throw classifyRuntimeError(id, `${bin.name} ${args[0]}`, runtimeErrorMessage(r.stderr) || `${bin.path} failed: ${how}`, Object.assign(new Error(how), r));
      },
      (err: unknown) => {
        throw classifyRuntimeError(id, `${bin.name} ${args[0]}`, (err as Error).message, err);
      },
    );
  }
  return new Promise((resolve, reject) => {
    const child = execFile(
      bin.path,
      [...bin.globalArgs, ...args],
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err) {
          const msg = runtimeErrorMessage(stderr) || err.message;
          reject(classifyRuntimeError(id, `${bin.name} ${args[0]}`, msg, err));
          return;
        }
        resolve({ stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** `RUNTIME state ID`: the status (anything else than created/running/paused is 'stopped') and pid; null for an unknown container. */
export async function runtimeState(bin: RuntimeBinary, id: string): Promise<{ status: RuntimeStatus; pid: number } | null> {
  try {
    const { stdout } = await runRuntime(bin, id, ['state', id], { timeoutMs: 10_000 });
    const st = JSON.parse(stdout) as Partial<OciState>;
    const status: RuntimeStatus = st.status === 'created' || st.status === 'running' || st.status === 'paused' ? st.status : 'stopped';
    return { status, pid: st.pid ?? 0 };
  } catch (err) {
    if (errorKind(err) === 'NotFound') return null;
    throw err;
  }
}

/**
 * `RUNTIME delete --force ID`; a container the runtime does not hold in a deletable state is
 * killed and deleted once more. A container the runtime does not know is fine.
 */
export async function forceDelete(bin: RuntimeBinary, id: string): Promise<void> {
  try {
    await runRuntime(bin, id, ['delete', '--force', id], { timeoutMs: 20_000 });
  } catch (err) {
    if (errorKind(err) === 'NotFound') return;
    await runRuntime(bin, id, ['kill', '--all', id, '9']).catch(() => undefined);
    await runRuntime(bin, id, ['delete', '--force', id]).catch((e: unknown) => {
      if (errorKind(e) !== 'NotFound') throw e;
    });
  }
}
