/**
 * The runtime backend registry: one per engine, keyed by backend name, and the index of
 * which backend serves each OCI runtime name. Plugins register backends while the engine
 * loads them (`PluginContext.registerBackend`); the registry is then sealed with the
 * default runtime, and from there it answers the container service's questions:
 *
 * - create: is HostConfig.Runtime a runtime some backend serves (`checkRuntime`)?
 * - start, runtimeCreate step: which backend runs this container (`select`: the name a
 *   runtimeCreate tap returned, else the backend serving the container's runtime)?
 * - everything after: the backend a record names (`backendOf`), and /info's list of every
 *   runtime of every backend (`runtimes`).
 */
import { ConflictError, InvalidParameterError, SystemError } from './errors.js';
import type { ExitInfo, RuntimeBackend, RuntimeCreateOptions, RuntimeDescription } from './runtime.js';
import type { ContainerRecord } from './types.js';

/** A runtime as /info lists it, with the backend that serves it. */
export interface RegisteredRuntime extends RuntimeDescription {
  readonly backend: string;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.:@/-]*$/;

export class BackendRegistry {
  private readonly byName = new Map<string, RuntimeBackend>();
  /** Runtime name → its backend and description (fixed at registration). */
  private readonly byRuntime = new Map<string, { backend: RuntimeBackend; runtime: RuntimeDescription }>();
  private defaultName: string | undefined;

  /** Make a backend and the runtimes it serves known. Only while the engine loads its plugins. */
  register(backend: RuntimeBackend): void {
    if (this.defaultName !== undefined) throw new SystemError(`runtime backend ${backend?.name} registered after the engine started; register backends in a plugin's register or apply`);
    if (!backend || typeof backend.name !== 'string' || !NAME_RE.test(backend.name)) {
      throw new InvalidParameterError(`invalid runtime backend name ${JSON.stringify(backend?.name)}`);
    }
    const known = this.byName.get(backend.name);
    if (known === backend) return;
    if (known) throw new ConflictError(`a different runtime backend named ${backend.name} is already registered`);
    const runtimes = typeof backend.runtimes === 'function' ? backend.runtimes() : [];
    if (!Array.isArray(runtimes) || runtimes.length === 0) {
      throw new InvalidParameterError(`runtime backend ${backend.name} serves no runtime (runtimes() must list at least one)`);
    }
    for (const r of runtimes) {
      if (!r || typeof r.name !== 'string' || !NAME_RE.test(r.name)) {
        throw new InvalidParameterError(`runtime backend ${backend.name}: invalid runtime name ${JSON.stringify(r?.name)}`);
      }
      const other = this.byRuntime.get(r.name);
      if (other) throw new ConflictError(`runtime ${r.name} is served by two runtime backends: ${other.backend.name} and ${backend.name}`);
    }
    this.byName.set(backend.name, backend);
    for (const r of runtimes) this.byRuntime.set(r.name, { backend, runtime: Object.freeze({ ...r, ...(r.runtimeArgs ? { runtimeArgs: Object.freeze([...r.runtimeArgs]) } : {}) }) });
  }

  /**
   * Fix the default runtime (dockerd's --default-runtime): the given one, else runc when a
   * backend serves it, else the first runtime of the first backend. No more registrations.
   */
  seal(defaultRuntime?: string): string {
    if (this.byName.size === 0) {
      throw new InvalidParameterError('no runtime backend: load a plugin that registers one (PluginContext.registerBackend), e.g. @berth/runtime-oci');
    }
    const name = defaultRuntime ?? (this.byRuntime.has('runc') ? 'runc' : this.byRuntime.keys().next().value!);
    if (!this.byRuntime.has(name)) {
      throw new InvalidParameterError(`default runtime ${name} is not registered (known: ${this.runtimeNames().join(', ')})`);
    }
    this.defaultName = name;
    return name;
  }

  /** The default runtime's name (after `seal`). */
  get defaultRuntime(): string {
    if (this.defaultName === undefined) throw new SystemError('the runtime backend registry is not sealed yet');
    return this.defaultName;
  }

  /** The backend serving the default runtime (before `seal`: the first registered, if any). */
  default(): RuntimeBackend | undefined {
    if (this.defaultName !== undefined) return this.byRuntime.get(this.defaultName)!.backend;
    return this.byName.values().next().value;
  }

  get(name: string): RuntimeBackend | undefined {
    return this.byName.get(name);
  }

  all(): RuntimeBackend[] {
    return [...this.byName.values()];
  }

  /** Every runtime of every backend, by name (/info's Runtimes). */
  runtimes(): RegisteredRuntime[] {
    return [...this.byRuntime.values()]
      .map(({ backend, runtime }) => ({ ...runtime, backend: backend.name }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** A runtime some backend serves, else dockerd's 400 for an unknown runtime. */
  checkRuntime(name: string): { backend: RuntimeBackend; runtime: RuntimeDescription } {
    const hit = this.byRuntime.get(name);
    if (!hit) throw new InvalidParameterError(`unknown or invalid runtime name: ${name}`);
    return hit;
  }

  /** The backend a record names (the default one when it names none yet). */
  backendOf(rec: ContainerRecord): RuntimeBackend {
    const b = rec.RuntimeBackend ? this.byName.get(rec.RuntimeBackend) : this.default();
    if (!b) throw new SystemError(`runtime backend ${rec.RuntimeBackend} of container ${rec.ID} is not available`);
    return b;
  }

  /**
   * The runtimeCreate step's choice. `chosen` is what the taps returned: a registered
   * backend's name takes the container (on the runtime asked for when it serves it, else on
   * its first runtime); nothing → the backend serving `opts.runtime`. Runtime arguments the
   * taps left as they were follow the runtime finally chosen.
   */
  select(chosen: unknown, opts: RuntimeCreateOptions, asked: { runtime: string; runtimeArgs: readonly string[] }): RuntimeBackend {
    let backend: RuntimeBackend;
    let runtime: RuntimeDescription;
    if (chosen !== undefined && chosen !== null) {
      const b = typeof chosen === 'string' ? this.byName.get(chosen) : undefined;
      if (!b) {
        const what = typeof chosen === 'string' ? JSON.stringify(chosen) : `a ${typeof chosen} (return a backend's name)`;
        throw new SystemError(`a runtimeCreate tap chose runtime backend ${what}, which is not registered (registered: ${[...this.byName.keys()].join(', ')})`);
      }
      backend = b;
      const own = this.byRuntime.get(opts.runtime);
      if (own?.backend === b) runtime = own.runtime;
      else {
        runtime = this.byRuntime.get(b.runtimes()[0]!.name)!.runtime;
        opts.runtime = runtime.name;
      }
    } else {
      ({ backend, runtime } = this.checkRuntime(opts.runtime));
    }
    const argsUntouched = opts.runtimeArgs.length === asked.runtimeArgs.length && opts.runtimeArgs.every((a, i) => a === asked.runtimeArgs[i]);
    if (opts.runtime !== asked.runtime && argsUntouched) opts.runtimeArgs = [...(runtime.runtimeArgs ?? [])];
    return backend;
  }

  /** The configured arguments of a runtime (RuntimeCreateOptions.runtimeArgs before the taps). */
  argsOf(runtime: string): string[] {
    return [...(this.checkRuntime(runtime).runtime.runtimeArgs ?? [])];
  }

  /** Listen to the exits of every registered backend; returns the unsubscribe function. */
  watchExits(listener: (backend: RuntimeBackend, exit: ExitInfo) => void): () => void {
    const offs = this.all().map((b) => b.onExit((exit) => listener(b, exit)));
    return () => {
      for (const off of offs.splice(0)) off();
    };
  }

  private runtimeNames(): string[] {
    return [...this.byRuntime.keys()].sort();
  }
}
