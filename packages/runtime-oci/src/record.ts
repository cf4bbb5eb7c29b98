/**
 * The backend's per-container record, `<bundle>/berth.json`: what a restarted daemon needs to
 * find a container's runtime, monitor and logs again. Reading it never destroys anything: a
 * record that is missing or cannot be parsed is rebuilt from what is still there — the live
 * monitor's command line (conmon was started with every field), the runtime's state dir
 * (`state/<runtime>/<id>`) and the bundle's config.json — and written back; the unreadable
 * copy is kept beside it (`berth.json.corrupt`) for the operator. Fields nothing can tell
 * (json-file rotation options; the log path when the monitor is gone) are left out, and the
 * record says it was rebuilt.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { atomicWriteFileSync, type AtomicWriteOptions } from '@berth/core';
import type { RuntimeRegistry } from './registry.js';

export interface ContainerMeta {
  id: string;
  runtime: string;
  runtimePath: string;
  globalArgs: string[];
  bundle: string;
  tty: boolean;
  openStdin: boolean;
  /** `path` is '' when a rebuilt record could not find it (no log conversion then); criPath: the CRI log copy (log-pump.ts). */
  log: { path: string; maxSize?: number; maxFile?: number; criPath?: string };
  k8sLog: string;
  created: string;
  /** Created from a checkpoint: conmon's `--restore` leaves it running, `start` is a no-op. */
  restored?: boolean;
  /**
   * The spec has poststart hooks: start through `RUNTIME start`, never the fast start (runc's
   * main branch runs poststart hooks in `runc start`, which reading exec.fifo directly would skip).
   */
  poststartHooks?: boolean;
  /** Rebuilt from the monitor/runtime/bundle because berth.json could not be read: why. */
  rebuilt?: string;
}

export const META_FILE = 'berth.json';

/**
 * How the backend writes its files (core's atomic write: a reader, or a daemon killed
 * meanwhile, sees the old or the new content). No fsync: these files live in the exec root,
 * which does not outlive a reboot anyway (a killed daemon still finds them in the page cache).
 */
export const EXEC_ROOT_WRITE: AtomicWriteOptions = { mode: 0o600, fsync: false };

/** The parsed record, or why it cannot be used ('missing' when there is no file). */
function parseMeta(file: string, id: string): ContainerMeta | string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `unreadable (${(err as NodeJS.ErrnoException).code})`;
  }
  try {
    const m = JSON.parse(text) as Partial<ContainerMeta>;
    const ok =
      m && m.id === id && typeof m.runtime === 'string' && typeof m.runtimePath === 'string' && Array.isArray(m.globalArgs) &&
      typeof m.bundle === 'string' && typeof m.k8sLog === 'string' && typeof m.log?.path === 'string';
    return ok ? (m as ContainerMeta) : 'not a container record';
  } catch (err) {
    return `corrupt (${(err as Error).message})`;
  }
}

/** The arguments of a live conmon that monitors `id`, or null. */
export function conmonArgs(pid: number, id: string): string[] | null {
  if (!(pid > 0)) return null;
  try {
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const c = args.indexOf('-c');
    return c > 0 && args[c + 1] === id ? args : null;
  } catch {
    return null;
  }
}

function argValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

export interface RebuildContext {
  id: string;
  bundle: string;
  /** `<execRoot>/oci/state`: the runtimes' state roots berth passes with `--root`. */
  stateRoot: string;
  registry: RuntimeRegistry;
}

/**
 * A record rebuilt from what is still on the host; null when the bundle itself is gone.
 * `why` says what was wrong with berth.json.
 */
export function rebuildMeta(ctx: RebuildContext, why: string): ContainerMeta | null {
  const { id, bundle, stateRoot, registry } = ctx;
  if (!fs.existsSync(bundle)) return null;
  let tty = false;
  try {
    tty = (JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')) as { process?: { terminal?: boolean } }).process?.terminal === true;
  } catch {
    /* no spec: not a tty */
  }
  const pidText = (() => {
    try {
      return fs.readFileSync(path.join(bundle, 'conmon.pid'), 'utf8').trim();
    } catch {
      return '';
    }
  })();
  const conmon = conmonArgs(Number.parseInt(pidText, 10), id);
  // The runtime: the one whose state root holds this ID (berth's own --root per runtime), else
  // the live monitor's runtime binary, else the default.
  const names = registry.names();
  let runtime = names.find((n) => fs.existsSync(path.join(stateRoot, n, id)));
  const conmonRuntime = conmon ? argValue(conmon, '-r') : undefined;
  if (!runtime && conmon) {
    const root = conmon.find((a, i) => conmon[i - 1] === '--runtime-arg' && a.startsWith(stateRoot + path.sep));
    runtime = root ? path.relative(stateRoot, root).split(path.sep)[0] : undefined;
  }
  if (!runtime || !names.includes(runtime)) runtime = registry.defaultRuntime;
  let runtimePath = conmonRuntime ?? '';
  let globalArgs: string[];
  if (conmon) {
    globalArgs = conmon.filter((_a, i) => conmon[i - 1] === '--runtime-arg');
  } else {
    const cfg = registry.get(runtime).config;
    globalArgs = ['--root', path.join(stateRoot, runtime), ...(cfg.runtimeArgs ?? [])];
  }
  if (!runtimePath) {
    try {
      runtimePath = registry.resolve(runtime).path;
    } catch {
      runtimePath = registry.get(runtime).config.path;
    }
  }
  const logArg = conmon ? argValue(conmon, '-l') : undefined;
  const k8sLog = logArg?.startsWith('k8s-file:') ? logArg.slice('k8s-file:'.length) : '';
  let created: string;
  try {
    created = fs.statSync(bundle).birthtime.toISOString();
  } catch {
    created = new Date().toISOString();
  }
  return {
    id,
    runtime,
    runtimePath,
    globalArgs,
    bundle,
    tty: conmon ? conmon.includes('-t') : tty,
    openStdin: conmon ? conmon.includes('-i') : false,
    log: { path: k8sLog.endsWith('.k8s') ? k8sLog.slice(0, -'.k8s'.length) : '' },
    k8sLog: k8sLog.endsWith('.k8s') ? k8sLog : '',
    created,
    ...(conmon?.includes('--restore') ? { restored: true } : {}),
    rebuilt: `${META_FILE} ${why}; rebuilt from ${conmon ? 'the live monitor' : 'the runtime state and bundle'}`,
  };
}

/**
 * The record of a container: berth.json, or, when that is missing or cannot be parsed, a record
 * rebuilt from the host (written back; a corrupt file is kept as berth.json.corrupt). Null when
 * there is nothing: no bundle, or a bundle with neither record nor runtime state nor monitor
 * (a create that never got that far).
 */
export function loadMeta(ctx: RebuildContext, warn: (msg: string) => void): ContainerMeta | null {
  const file = path.join(ctx.bundle, META_FILE);
  const parsed = parseMeta(file, ctx.id);
  if (typeof parsed !== 'string') return parsed;
  const meta = rebuildMeta(ctx, parsed);
  if (!meta) return null;
  if (parsed === 'missing' && !meta.k8sLog && !ctx.registry.names().some((n) => fs.existsSync(path.join(ctx.stateRoot, n, ctx.id)))) {
    // A half-made bundle (the create died before the record was written): nothing to manage.
    return null;
  }
  warn(`container ${ctx.id}: ${meta.rebuilt}${meta.log.path ? '' : ' (its log path is unknown: output is not converted)'}; json-file rotation options are not known until it is created again`);
  try {
    if (parsed !== 'missing') fs.copyFileSync(file, `${file}.corrupt`);
    atomicWriteFileSync(file, JSON.stringify(meta), EXEC_ROOT_WRITE);
  } catch (err) {
    warn(`container ${ctx.id}: cannot write the rebuilt ${META_FILE}: ${(err as Error).message}`);
  }
  return meta;
}
