/**
 * The one error a failed start ends in: `StartStepError` names the step that failed (the
 * step table in start-steps.ts), the exit code the container is left with (dockerd's 128,
 * or 127/126 for an entrypoint the runtime could not run) and the cause. Its message is the
 * cause's message and `errorKind()` reads the cause's kind through `cause`, so the HTTP
 * status is the cause's (a PluginError keeps its tap's kind; an entrypoint error is 400).
 */
import { InvalidParameterError, errorMessage } from './errors.js';
import { EXIT_CMD_NOT_FOUND, EXIT_EACCES, EXIT_START_FAILED } from './exit-codes.js';
import { fullMessage } from './util.js';

/** The steps of a start, in dockerd's order (moby daemon/start.go containerStart). */
export type StartStepName = 'mount' | 'networking' | 'spec' | 'runtimeCreate' | 'beforeStart' | 'start' | 'save';

export class StartStepError extends Error {
  override readonly name = 'StartStepError';
  constructor(
    /** The step whose `run` failed. */
    readonly step: StartStepName,
    /** The exit code the failed start leaves (128, or 127/126 for an entrypoint error). */
    readonly exitCode: number,
    /** What went wrong; its kind is the error's kind (errorKind walks `cause`). */
    override readonly cause: unknown,
  ) {
    super(errorMessage(cause), { cause });
  }
}

/**
 * A runtime create/start error as moby's translateContainerdStartErr sees it: an entrypoint
 * that is not there → 127, one that cannot be executed → 126, both a 400 "failed to create
 * task for container: …"; anything else keeps its kind with exit code 128.
 */
export function translateStartError(err: unknown): { exitCode: number; error: unknown } {
  const text = fullMessage(err);
  if (/executable file not found|no such file or directory|system cannot find the file specified/i.test(text)) {
    return { exitCode: EXIT_CMD_NOT_FOUND, error: new InvalidParameterError(`failed to create task for container: ${text}`, { cause: err }) };
  }
  if (/permission denied/i.test(text)) {
    return { exitCode: EXIT_EACCES, error: new InvalidParameterError(`failed to create task for container: ${text}`, { cause: err }) };
  }
  return { exitCode: EXIT_START_FAILED, error: err };
}
