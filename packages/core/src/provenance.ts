/**
 * Per-container record of what each start did (the data behind `berth explain` and
 * `GET /berth/v1/containers/{id}/explain`): every tap of every hook in the order it ran, with
 * its duration and whether its `when` selector skipped it; for `specBuild`, the JSON paths of
 * the spec each tap changed; the undo steps a failed start ran. Kept in memory per container
 * (bounded) and, at the end of each start, written beside the record (explain.ts) so it
 * survives a daemon restart.
 */

export interface TapRecord {
  hook: string;
  /** Plugin that owns the tap (the tap's `plugin` option, else its name). */
  plugin: string;
  tap: string;
  stage: number;
  /** RFC 3339 start time. */
  startedAt: string;
  durationMs: number;
  /** specBuild only: spec paths this tap changed ("process.args", "linux.namespaces[3]"). */
  changedPaths?: string[];
  /** How many changed paths were left out of `changedPaths` (bounded at MAX_CHANGED_PATHS). */
  changedPathsOmitted?: number;
  error?: string;
  /** True when the tap's `when` selector excluded this container. */
  skipped?: boolean;
}

/** An undo step (`ctx.addUndo`) a failed start ran. */
export interface UndoRecord {
  plugin: string;
  hook: string;
  label?: string;
  startedAt: string;
  durationMs: number;
  error?: string;
}

export interface SpecFieldOwner {
  path: string;
  /** Plugins that wrote the path, in order; the last one won. */
  plugins: string[];
}

/** What one container's last start did, as recorded (and persisted). */
export interface ProvenanceRecord {
  /** RFC 3339 time the last start began; absent when nothing started the container yet. */
  startedAt?: string;
  taps: TapRecord[];
  undos: UndoRecord[];
}

export interface ContainerExplain {
  containerId: string;
  /** The container's name without the leading slash. */
  name: string;
  /** RFC 3339 time the last start began; absent when the container never started. */
  startedAt?: string;
  /** Every tap in the order it ran (hooks of the start, then those since: stop, exit, release). */
  taps: TapRecord[];
  /** The undo steps a failed start ran, in the order they ran. */
  undos: UndoRecord[];
  /** specBuild paths and who set them (last writer last). */
  spec: SpecFieldOwner[];
  /** Paths written by more than one plugin other than core:defaults. */
  conflicts: SpecFieldOwner[];
  /** memory: recorded by this daemon; file: read back from disk (recorded before a restart); none: nothing recorded. */
  source: 'memory' | 'file' | 'none';
}

export const CORE_DEFAULTS_PLUGIN = 'core:defaults';
/** Bounds of one container's record: taps, undo steps, changed paths per tap. */
export const MAX_TAP_RECORDS = 500;
export const MAX_UNDO_RECORDS = 100;
export const MAX_CHANGED_PATHS = 200;

export class ProvenanceRecorder {
  private readonly byContainer = new Map<string, ProvenanceRecord>();
  /** Containers whose last start was recorded by an earlier process (read back with adopt). */
  private readonly fromDisk = new Set<string>();
  /** Each container's explain-record write in flight (flush). */
  private readonly writing = new Map<string, Promise<void>>();
  constructor(
    /** Where a container's record goes at the end of each start (explain.ts); none: memory only. */
    private readonly persist?: (containerId: string, rec: ProvenanceRecord) => Promise<void>,
    private readonly maxTaps = MAX_TAP_RECORDS,
  ) {}

  private entry(containerId: string): ProvenanceRecord {
    let e = this.byContainer.get(containerId);
    if (!e) this.byContainer.set(containerId, (e = { taps: [], undos: [] }));
    return e;
  }

  record(containerId: string, rec: TapRecord): void {
    const list = this.entry(containerId).taps;
    if (rec.changedPaths && rec.changedPaths.length > MAX_CHANGED_PATHS) {
      rec = { ...rec, changedPaths: rec.changedPaths.slice(0, MAX_CHANGED_PATHS), changedPathsOmitted: rec.changedPaths.length - MAX_CHANGED_PATHS };
    }
    list.push(rec);
    if (list.length > this.maxTaps) list.splice(0, list.length - this.maxTaps);
  }

  recordUndo(containerId: string, rec: UndoRecord): void {
    const list = this.entry(containerId).undos;
    list.push(rec);
    if (list.length > MAX_UNDO_RECORDS) list.splice(0, list.length - MAX_UNDO_RECORDS);
  }

  /** A start begins: forget what earlier starts recorded. */
  reset(containerId: string, startedAt: string): void {
    this.byContainer.set(containerId, { startedAt, taps: [], undos: [] });
    this.fromDisk.delete(containerId);
  }

  forget(containerId: string): void {
    this.byContainer.delete(containerId);
    this.fromDisk.delete(containerId);
  }

  /** Where this container's record comes from: a start in this process, one read back from disk, or neither yet. */
  sourceOf(containerId: string): ContainerExplain['source'] {
    if (this.fromDisk.has(containerId)) return 'file';
    return this.byContainer.get(containerId)?.startedAt ? 'memory' : 'none';
  }

  /** Take over a start's record read back from disk (the daemon restarted since): it goes before what was recorded since. */
  adopt(containerId: string, rec: ProvenanceRecord): void {
    const cur = this.byContainer.get(containerId);
    this.byContainer.set(containerId, {
      ...(rec.startedAt ? { startedAt: rec.startedAt } : {}),
      taps: [...rec.taps, ...(cur?.taps ?? [])].slice(-this.maxTaps),
      undos: [...rec.undos, ...(cur?.undos ?? [])].slice(-MAX_UNDO_RECORDS),
    });
    this.fromDisk.add(containerId);
  }

  /**
   * A start ended (ran or failed): write the record where it survives a restart, after the
   * container's write still in flight, if any (so the newest lands last). Never throws;
   * `written` waits for it (a removal, before the container's directory goes).
   */
  flush(containerId: string): Promise<void> {
    const e = this.byContainer.get(containerId);
    const persist = this.persist;
    if (!e || !persist) return this.written(containerId);
    const w = this.written(containerId).then(() => persist(containerId, e).catch(() => undefined));
    this.writing.set(containerId, w);
    void w.then(() => {
      if (this.writing.get(containerId) === w) this.writing.delete(containerId);
    });
    return w;
  }

  /** The container's record writes so far have landed (or failed). */
  written(containerId: string): Promise<void> {
    return this.writing.get(containerId) ?? Promise.resolve();
  }

  /** The record of a container, copied (undefined: nothing recorded in this process). */
  snapshot(containerId: string): ProvenanceRecord | undefined {
    const e = this.byContainer.get(containerId);
    return e && cloneJson(e);
  }
}

/** The explain view of a record: the spec paths per plugin and the conflicts derived from the taps. */
export function explainOf(containerId: string, name: string, rec: ProvenanceRecord | undefined, source: ContainerExplain['source']): ContainerExplain {
  const taps = rec ? cloneJson(rec.taps) : [];
  const owners = new Map<string, string[]>();
  for (const t of taps) {
    if (t.hook !== 'specBuild' || !t.changedPaths) continue;
    for (const p of t.changedPaths) {
      const list = owners.get(p) ?? [];
      list.push(t.plugin);
      owners.set(p, list);
    }
  }
  const spec = [...owners].map(([path, plugins]) => ({ path, plugins }));
  const conflicts = spec.filter((o) => new Set(o.plugins.filter((p) => p !== CORE_DEFAULTS_PLUGIN)).size > 1);
  return {
    containerId,
    name: name.replace(/^\//, ''),
    ...(rec?.startedAt ? { startedAt: rec.startedAt } : {}),
    taps,
    undos: rec ? cloneJson(rec.undos) : [],
    spec,
    conflicts,
    source,
  };
}

/** A deep copy of JSON data (specs are plain JSON). */
export function cloneJson<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

/** Objects frozen with deepFreeze: nothing under them can change, so copies may share them. */
const deeplyFrozen = new WeakSet<object>();

/**
 * Freeze a value and everything under it, and mark it as such: a plugin that hands the same
 * data to many containers (the seccomp plugin's compiled profiles) makes it immutable, so that a
 * tap editing it in place fails instead of changing every later container's spec, and the hook
 * interceptor's copy of a spec before each specBuild tap (for `berth explain` and the rollback of
 * a failed tap) shares it instead of copying it at every start.
 */
export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !deeplyFrozen.has(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
    deeplyFrozen.add(v);
  }
  return v;
}

/**
 * What `cloneJson` gives (undefined and functions left out of objects, null in arrays,
 * non-finite numbers as null, `toJSON` honoured), except that values made by `deepFreeze` are
 * shared, not copied: they cannot change, and `diffPaths` passes over a shared one at once.
 */
export function snapshotJson<T>(v: T): T {
  return snapshotValue(v) as T;
}

function snapshotValue(v: unknown): unknown {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v !== 'object' || v === null) return typeof v === 'function' || typeof v === 'symbol' ? undefined : v;
  if (deeplyFrozen.has(v)) return v;
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return cloneJson(v);
  if (Array.isArray(v)) {
    return v.map((x) => {
      const c = snapshotValue(x);
      return c === undefined ? null : c;
    });
  }
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    const c = snapshotValue((v as Record<string, unknown>)[k]);
    if (c !== undefined) out[k] = c;
  }
  return out;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The paths where `b` differs from `a`: leaves for changed scalars, the top-most path for
 * added/removed subtrees; array elements as `path[i]`.
 */
export function diffPaths(a: unknown, b: unknown, base = ''): string[] {
  if (Object.is(a, b)) return [];
  if (Array.isArray(a) && Array.isArray(b)) {
    const out: string[] = [];
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const p = `${base}[${i}]`;
      if (i >= a.length || i >= b.length) out.push(p);
      else out.push(...diffPaths(a[i], b[i], p));
    }
    return out;
  }
  if (isObj(a) && isObj(b)) {
    const out: string[] = [];
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) {
      const p = base ? `${base}.${k}` : k;
      const inA = Object.prototype.hasOwnProperty.call(a, k) && a[k] !== undefined;
      const inB = Object.prototype.hasOwnProperty.call(b, k) && b[k] !== undefined;
      if (!inA && !inB) continue;
      if (inA !== inB) out.push(p);
      else out.push(...diffPaths(a[k], b[k], p));
    }
    return out;
  }
  return [base || '$'];
}
