/**
 * Per-container record of what each tap did: duration of every tap of every hook and, for
 * `specBuild`, the JSON paths of the spec it changed (the data behind `berth explain`).
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
  error?: string;
  /** True when the tap's `when` selector excluded this container. */
  skipped?: boolean;
}

export interface SpecFieldOwner {
  path: string;
  /** Plugins that wrote the path, in order; the last one won. */
  plugins: string[];
}

export interface ContainerProvenance {
  containerId: string;
  taps: TapRecord[];
  /** specBuild paths and who set them (last writer last). */
  spec: SpecFieldOwner[];
  /** Paths written by more than one plugin other than core:defaults. */
  conflicts: SpecFieldOwner[];
}

export const CORE_DEFAULTS_PLUGIN = 'core:defaults';

export class ProvenanceRecorder {
  private readonly byContainer = new Map<string, TapRecord[]>();
  constructor(private readonly maxPerContainer = 1000) {}

  record(containerId: string, rec: TapRecord): void {
    let list = this.byContainer.get(containerId);
    if (!list) this.byContainer.set(containerId, (list = []));
    list.push(rec);
    if (list.length > this.maxPerContainer) list.splice(0, list.length - this.maxPerContainer);
  }

  /** Forget what earlier starts recorded (called at the beginning of each start). */
  reset(containerId: string): void {
    this.byContainer.delete(containerId);
  }

  forget(containerId: string): void {
    this.byContainer.delete(containerId);
  }

  get(containerId: string): ContainerProvenance {
    const taps = (this.byContainer.get(containerId) ?? []).map((t) => ({ ...t, changedPaths: t.changedPaths && [...t.changedPaths] }));
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
    return { containerId, taps, spec, conflicts };
  }
}

/** A deep copy of JSON data (specs are plain JSON). */
export function cloneJson<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
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
