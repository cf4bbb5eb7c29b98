/**
 * Checkpoint/restore in the OCI backend, apart from the create/start sequence (backend.ts):
 *
 * - Which runtimes can checkpoint (`CheckpointSupport`), per runtime, not per backend. A
 *   runtime says so in its own features document (`RUNTIME features`, OCI runtime-spec
 *   features.md): annotation `org.opencontainers.runc.checkpoint.enabled: "true"` (runc ≥ 1.1,
 *   crun and youki publish it). Those runtimes checkpoint through the host's CRIU, so the
 *   CRIU probe (criu.ts) must pass too — unless the document also says
 *   `io.berth.checkpoint.criu: "false"`: the runtime checkpoints without the host's CRIU (the
 *   repository's fake runtime CLI does). No features document (runc < 1.1, most wrappers): no
 *   checkpoint.
 * - The runtime's checkpoint command line, as containerd's runc shim builds it for dockerd:
 *   `checkpoint --image-path IMG --work-path WORK [--leave-running] ID`, WORK being
 *   `<bundle>/criu-work` (CRIU's dump.log and scratch files), removed after a success.
 * - CRIU's log kept where the user finds it after a failure: `<container dir>/criu-dump.log`
 *   (checkpoint) or `criu-restore.log` (restore: conmon's `--restore` passes the bundle as the
 *   work path, and a failed restore removes the bundle), the container dir being the one of
 *   its json-file log under the data root. The error (SystemError) names that file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidParameterError, SystemError, errorKind, errorMessage, type RuntimeBackend } from '@berth/core';
import { CriuProbe } from './criu.js';
import type { ContainerMeta } from './record.js';
import type { RuntimeRegistry } from './registry.js';
import { runRuntime, type RuntimeBinary } from './runtime-cli.js';

/** The features annotation runc, crun and youki set when they can checkpoint/restore (through CRIU). */
export const CHECKPOINT_ANNOTATION = 'org.opencontainers.runc.checkpoint.enabled';
/** berth's annotation for a runtime whose checkpoint does not need the host's CRIU: value "false". */
export const CRIU_ANNOTATION = 'io.berth.checkpoint.criu';

const FEATURES_TIMEOUT_MS = 5_000;
const CHECKPOINT_TIMEOUT_MS = 120_000;

/** What a runtime's features document says about checkpoint/restore. */
export interface CheckpointCapability {
  /** The runtime implements `checkpoint` and `restore`. */
  declared: boolean;
  /** …through the host's CRIU (then `criu check` must pass). */
  needsCriu: boolean;
}

/** Read a features document (`RUNTIME features` stdout); anything unreadable declares nothing. */
export function parseFeatures(stdout: string): CheckpointCapability {
  let doc: { annotations?: unknown };
  try {
    doc = JSON.parse(stdout) as typeof doc;
  } catch {
    return { declared: false, needsCriu: true };
  }
  const ann = doc && typeof doc.annotations === 'object' && doc.annotations ? (doc.annotations as Record<string, unknown>) : {};
  return { declared: ann[CHECKPOINT_ANNOTATION] === 'true', needsCriu: ann[CRIU_ANNOTATION] !== 'false' };
}

/** The runtime's checkpoint arguments (after its global arguments). */
export function checkpointArgs(id: string, o: { imagePath: string; workPath: string; leaveRunning: boolean }): string[] {
  const args = ['checkpoint', '--image-path', o.imagePath, '--work-path', o.workPath];
  if (o.leaveRunning) args.push('--leave-running');
  args.push(id);
  return args;
}

/**
 * Per-runtime checkpoint capability of one backend: every runtime's features document is read
 * once, in parallel (`probe()`; the plugin waits for it before the engine starts), and CRIU is
 * probed in the background as soon as a runtime needs it. `known()` answers synchronously
 * (false until the probes have said yes); `supported()` waits for them.
 */
export class CheckpointSupport {
  private readonly caps = new Map<string, Promise<CheckpointCapability>>();
  private readonly answered = new Map<string, CheckpointCapability>();
  private probing: Promise<void> | undefined;
  private readonly criu: CriuProbe;

  constructor(
    private readonly registry: RuntimeRegistry,
    warn: (msg: string) => void,
  ) {
    this.criu = new CriuProbe(warn);
  }

  /** Stop a CRIU probe still running (the backend closes). */
  close(): void {
    this.criu.close();
  }

  /** Read every runtime's features document (once); resolves when all have answered. */
  probe(): Promise<void> {
    this.probing ??= Promise.all(this.registry.names().map((n) => this.capability(n))).then(() => undefined);
    return this.probing;
  }

  private capability(name: string): Promise<CheckpointCapability> {
    let p = this.caps.get(name);
    if (!p) {
      p = this.readFeatures(name).then((cap) => {
        this.answered.set(name, cap);
        if (cap.declared && cap.needsCriu) void this.criu.works();
        return cap;
      });
      this.caps.set(name, p);
    }
    return p;
  }

  private async readFeatures(name: string): Promise<CheckpointCapability> {
    let bin: string;
    try {
      bin = this.registry.resolve(name).path;
    } catch {
      return { declared: false, needsCriu: true }; // binary missing: create says so when it is used
    }
    // The binary alone: the features document describes the binary, not one invocation's
    // arguments (a configured `--log` would otherwise record a call no container made).
    try {
      const { stdout } = await runRuntime({ name, path: bin, globalArgs: [] }, name, ['features'], { timeoutMs: FEATURES_TIMEOUT_MS });
      return parseFeatures(stdout);
    } catch {
      return { declared: false, needsCriu: true };
    }
  }

  /** Whether `runtime` can checkpoint, as far as the probes have answered (false until then). */
  known(runtime: string): boolean {
    const cap = this.answered.get(runtime);
    if (!cap?.declared) return false;
    return !cap.needsCriu || this.criu.known === true;
  }

  /** Whether `runtime` can checkpoint, once its probes have answered. */
  async supported(runtime: string): Promise<boolean> {
    if (!this.registry.names().includes(runtime)) return false;
    const cap = await this.capability(runtime);
    if (!cap.declared) return false;
    return !cap.needsCriu || (await this.criu.works());
  }

  /** Throws InvalidParameter `checkpoint is not supported by runtime X: why` unless `supported()`. */
  async check(runtime: string): Promise<void> {
    if (await this.supported(runtime)) return;
    const cap = this.registry.names().includes(runtime) ? await this.capability(runtime) : undefined;
    const why = !cap?.declared
      ? `its features document (\`${runtime} features\`) does not declare ${CHECKPOINT_ANNOTATION}`
      : (this.criu.reason ?? 'CRIU does not work on this host');
    throw new InvalidParameterError(`checkpoint is not supported by runtime ${runtime}: ${why}`);
  }
}

/** Where CRIU's log of a failed checkpoint/restore is kept: the container's dir (its log's), else the bundle. */
function keptLogPath(meta: ContainerMeta, which: 'dump' | 'restore'): string {
  const dir = meta.log.path ? path.dirname(meta.log.path) : meta.bundle;
  return path.join(dir, `criu-${which}.log`);
}

/** Copy CRIU's log to where it outlives the failure; the kept path, or null when there was none. */
function keepLog(from: string, to: string): string | null {
  try {
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(from, to);
    return to;
  } catch {
    return null;
  }
}

/**
 * `RUNTIME checkpoint` of a running container into `imagePath`. exit=true: the runtime stops
 * the container (CRIU kills it: conmon reports 137, as dockerd shows it). A failure is a
 * SystemError naming CRIU's log (`<container dir>/criu-dump.log`) when the runtime wrote one.
 */
export async function checkpointContainer(bin: RuntimeBinary, meta: ContainerMeta, o: { path: string; exit: boolean }): Promise<void> {
  const work = path.join(meta.bundle, 'criu-work');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true, mode: 0o700 });
  try {
    await runRuntime(bin, meta.id, checkpointArgs(meta.id, { imagePath: o.path, workPath: work, leaveRunning: !o.exit }), { timeoutMs: CHECKPOINT_TIMEOUT_MS });
  } catch (err) {
    // Not running any more, unknown to the runtime: not CRIU's failure, the runtime's kind stays.
    if (errorKind(err) !== 'System') throw err;
    const kept = keepLog(path.join(work, 'dump.log'), keptLogPath(meta, 'dump'));
    throw new SystemError(`checkpoint of container ${meta.id} failed: ${errorMessage(err)}${kept ? `; CRIU log: ${kept}` : ''}`, { cause: err });
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * A restore (conmon `--restore`) failed: keep CRIU's restore.log (conmon gave the bundle as the
 * work path; the cleanup that follows removes the bundle) and name it in the error.
 */
export function restoreFailure(meta: ContainerMeta, from: string, err: unknown): Error {
  const kept = keepLog(path.join(meta.bundle, 'restore.log'), keptLogPath(meta, 'restore'));
  return new SystemError(`restore of container ${meta.id} from ${from} failed: ${errorMessage(err)}${kept ? `; CRIU log: ${kept}` : ''}`, { cause: err });
}

/**
 * The container's exit event, awaited after a checkpoint that stops it (the runtime returns
 * before conmon has written the exit file): `done` resolves at the exit, or after 10 s with a
 * warning; `cancel()` stops listening.
 */
export function exitWaiter(
  backend: Pick<RuntimeBackend, 'onExit'>,
  id: string,
  warn: (msg: string) => void,
): { done: Promise<void>; cancel(): void } {
  let off = (): void => {};
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve) => {
    off = backend.onExit((e) => {
      if (e.id === id && !e.execId) resolve();
    });
    timer = setTimeout(() => {
      warn(`container ${id}: no exit reported 10 s after its checkpoint stopped it`);
      resolve();
    }, 10_000);
    timer.unref();
  });
  return {
    done,
    cancel: () => {
      off();
      clearTimeout(timer);
    },
  };
}
