/** Running the OCI runtime's command line, with its errors translated to typed ones. */
import { execFile } from 'node:child_process';
import { ConflictError, NotFoundError, SystemError } from '@berth/core';

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
  return new Promise((resolve, reject) => {
    const child = execFile(
      bin.path,
      [...bin.globalArgs, ...args],
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024, killSignal: 'SIGKILL' },
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
