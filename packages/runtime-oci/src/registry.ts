/**
 * The runtime registry, as dockerd has it: `--add-runtime name=path` (repeatable),
 * daemon.json `"runtimes": {"name": {"path": "...", "runtimeArgs": [...]}}`,
 * `--default-runtime`, and per-container `HostConfig.Runtime`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidParameterError, SystemError } from '@berth/core';

export interface RuntimeConfig {
  /** Binary path; a bare name is looked up in $PATH when used. */
  path: string;
  runtimeArgs?: string[];
}

export type RuntimeMap = Record<string, RuntimeConfig>;

/** The runtime dockerd registers without configuration. */
export const DEFAULT_RUNTIME_NAME = 'runc';

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Parse one `--add-runtime` value: `name=path`. */
export function parseAddRuntime(value: string): [string, RuntimeConfig] {
  const eq = value.indexOf('=');
  if (eq <= 0 || eq === value.length - 1) {
    throw new InvalidParameterError(`invalid --add-runtime value ${JSON.stringify(value)}: expected name=path`);
  }
  const name = value.slice(0, eq).trim();
  const p = value.slice(eq + 1).trim();
  if (!NAME_RE.test(name)) throw new InvalidParameterError(`invalid runtime name ${JSON.stringify(name)}`);
  if (!p) throw new InvalidParameterError(`runtime ${name}: empty path`);
  return [name, { path: p }];
}

/** Validate daemon.json's `runtimes` object. */
export function parseDaemonJsonRuntimes(value: unknown): RuntimeMap {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidParameterError('daemon.json "runtimes" must be an object of {"name": {"path": ..., "runtimeArgs": [...]}}');
  }
  const out: RuntimeMap = {};
  for (const [name, raw] of Object.entries(value as Record<string, unknown>)) {
    if (!NAME_RE.test(name)) throw new InvalidParameterError(`invalid runtime name ${JSON.stringify(name)}`);
    if (!raw || typeof raw !== 'object') throw new InvalidParameterError(`runtime ${name}: expected an object`);
    const { path: p, runtimeArgs } = raw as { path?: unknown; runtimeArgs?: unknown };
    if (typeof p !== 'string' || !p) throw new InvalidParameterError(`runtime ${name}: "path" is required`);
    if (runtimeArgs !== undefined && (!Array.isArray(runtimeArgs) || runtimeArgs.some((a) => typeof a !== 'string'))) {
      throw new InvalidParameterError(`runtime ${name}: "runtimeArgs" must be an array of strings`);
    }
    out[name] = runtimeArgs ? { path: p, runtimeArgs: [...(runtimeArgs as string[])] } : { path: p };
  }
  return out;
}

export interface BuildRuntimesInput {
  /** `--add-runtime` values. */
  addRuntime?: string[];
  /** daemon.json `runtimes`. */
  daemonJson?: unknown;
  /** `--default-runtime` / daemon.json `default-runtime`. */
  defaultRuntime?: string;
  /** Path of the built-in runc (default: `runc` from $PATH). */
  runcPath?: string;
}

/**
 * Merge flags and daemon.json into one registry, as dockerd does: `runc` is built in and
 * cannot be redefined; a name given both by flag and in daemon.json is a conflict.
 */
export function buildRuntimes(input: BuildRuntimesInput): { runtimes: RuntimeMap; defaultRuntime: string } {
  const runtimes: RuntimeMap = { [DEFAULT_RUNTIME_NAME]: { path: input.runcPath ?? 'runc' } };
  const fromJson = parseDaemonJsonRuntimes(input.daemonJson);
  for (const [name, cfg] of Object.entries(fromJson)) {
    if (name === DEFAULT_RUNTIME_NAME) throw new InvalidParameterError(`runtime name '${name}' is reserved`);
    runtimes[name] = cfg;
  }
  for (const v of input.addRuntime ?? []) {
    const [name, cfg] = parseAddRuntime(v);
    if (name === DEFAULT_RUNTIME_NAME) throw new InvalidParameterError(`runtime name '${name}' is reserved`);
    if (name in fromJson) {
      throw new InvalidParameterError(`runtime ${name} is given both in daemon.json and with --add-runtime`);
    }
    runtimes[name] = cfg;
  }
  const defaultRuntime = input.defaultRuntime ?? DEFAULT_RUNTIME_NAME;
  if (!(defaultRuntime in runtimes)) {
    throw new InvalidParameterError(
      `default runtime ${defaultRuntime} is not registered (known: ${Object.keys(runtimes).sort().join(', ')})`,
    );
  }
  return { runtimes, defaultRuntime };
}

/** Look a binary up in $PATH (or check an absolute path): the executable path or null. */
export function findExecutable(bin: string, envPath = process.env.PATH ?? ''): string | null {
  const candidates = bin.includes('/') ? [bin] : envPath.split(':').filter(Boolean).map((d) => path.join(d, bin));
  for (const c of candidates) {
    try {
      const st = fs.statSync(c);
      if (st.isFile()) {
        fs.accessSync(c, fs.constants.X_OK);
        return path.resolve(c);
      }
    } catch {
      /* next */
    }
  }
  return null;
}

export class RuntimeRegistry {
  private readonly map: Map<string, RuntimeConfig>;

  constructor(
    runtimes: RuntimeMap,
    readonly defaultRuntime: string,
  ) {
    this.map = new Map(Object.entries(runtimes));
    if (!this.map.has(defaultRuntime)) {
      throw new InvalidParameterError(
        `default runtime ${defaultRuntime} is not registered (known: ${this.names().join(', ')})`,
      );
    }
  }

  names(): string[] {
    return [...this.map.keys()].sort();
  }

  /** The config of a runtime name ('' or undefined = the default); invalid parameter if unknown. */
  get(name?: string): { name: string; config: RuntimeConfig } {
    const n = name || this.defaultRuntime;
    const config = this.map.get(n);
    if (!config) {
      throw new InvalidParameterError(`unknown or invalid runtime name: ${n} (known runtimes: ${this.names().join(', ')})`);
    }
    return { name: n, config };
  }

  /** The binary of a runtime, resolved now; a clear error when it is missing. */
  resolve(name?: string): { name: string; path: string; runtimeArgs: string[] } {
    const { name: n, config } = this.get(name);
    const p = findExecutable(config.path);
    if (!p) {
      throw new SystemError(`runtime ${n}: binary ${JSON.stringify(config.path)} not found or not executable`);
    }
    return { name: n, path: p, runtimeArgs: config.runtimeArgs ?? [] };
  }
}
