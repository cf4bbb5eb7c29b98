/**
 * Introspection for `berth explain` / `berth plugins` (and `/berth/v1/...`): a container's
 * start record persisted beside its state (`<data-root>/containers/<id>/explain.json`,
 * written at the end of each start, read back after a daemon restart), and each plugin's
 * introspection entry (version, config with secrets redacted, the hooks it taps).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicWriteFile } from './atomic-write.js';
import type { HookName, Hooks } from './hooks.js';
import type { PluginStatus } from './plugin.js';
import type { ProvenanceRecord } from './provenance.js';

export const EXPLAIN_FILE = 'explain.json';
/** What a redacted config value reads as. */
export const REDACTED = '<redacted>';

/** Write a container's start record into its directory (atomic, no fsync: losing it loses only the explanation). */
export async function saveExplainRecord(containerDir: string, rec: ProvenanceRecord): Promise<void> {
  await atomicWriteFile(join(containerDir, EXPLAIN_FILE), JSON.stringify({ version: 1, ...rec }), { fsync: false });
}

/** The start record written by saveExplainRecord; undefined when there is none or it is not readable. */
export async function loadExplainRecord(containerDir: string): Promise<ProvenanceRecord | undefined> {
  let obj: unknown;
  try {
    obj = JSON.parse(await readFile(join(containerDir, EXPLAIN_FILE), 'utf8'));
  } catch {
    return undefined;
  }
  const o = obj as Partial<ProvenanceRecord> & { version?: unknown };
  if (!o || typeof o !== 'object' || o.version !== 1 || !Array.isArray(o.taps) || !Array.isArray(o.undos)) return undefined;
  return { ...(typeof o.startedAt === 'string' ? { startedAt: o.startedAt } : {}), taps: o.taps, undos: o.undos };
}

/** One tap of a plugin: the hook, the tap's name and stage. */
export interface PluginTap {
  hook: HookName;
  tap: string;
  stage: number;
}

/** A plugin as `engine.plugins` lists it: its status, and for a loaded one the taps it made. */
export interface PluginInfo extends PluginStatus {
  /** The hooks this plugin taps, in hook order then tap order (empty unless loaded). */
  hooks: PluginTap[];
}

/**
 * A plugin's config as introspection shows it: JSON data only (functions and symbols left
 * out, bigints as strings, cycles cut), the values at `secretKeys` (dotted paths, e.g.
 * `token` or `registry.password`) replaced by "<redacted>".
 */
export function redactConfig(config: unknown, secretKeys: readonly string[] = []): unknown {
  const seen = new WeakSet<object>();
  const walk = (v: unknown, path: string): unknown => {
    if (path && secretKeys.includes(path)) return REDACTED;
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'function' || typeof v === 'symbol' || v === undefined) return undefined;
    if (v === null || typeof v !== 'object') return v;
    if (seen.has(v)) return '[circular]';
    seen.add(v);
    try {
      if (Array.isArray(v)) return v.map((x, i) => walk(x, path ? `${path}.${i}` : String(i)) ?? null);
      if (v instanceof Date) return v.toISOString();
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        const w = walk(x, path ? `${path}.${k}` : k);
        if (w !== undefined) out[k] = w;
      }
      return out;
    } finally {
      seen.delete(v);
    }
  };
  return walk(config, '');
}

/** Each plugin's taps, read from the hooks themselves (so a tap made after load shows too). */
export function pluginInfos(statuses: readonly PluginStatus[], hooks: Hooks): PluginInfo[] {
  const byPlugin = new Map<string, PluginTap[]>();
  for (const hook of Object.keys(hooks) as HookName[]) {
    const taps = (hooks[hook] as unknown as { taps: Array<{ name: string; stage?: number; plugin?: string }> }).taps;
    for (const t of taps) {
      const owner = t.plugin ?? t.name;
      const list = byPlugin.get(owner) ?? [];
      list.push({ hook, tap: t.name, stage: t.stage ?? 0 });
      byPlugin.set(owner, list);
    }
  }
  return statuses.map((s) => ({ ...s, hooks: s.status === 'loaded' ? (byPlugin.get(s.name) ?? []) : [] }));
}
