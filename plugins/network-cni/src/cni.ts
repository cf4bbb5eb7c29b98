/**
 * A CNI runner written against the CNI specification (SPEC.md of containernetworking/cni,
 * versions 0.4.0 and 1.0.0): it runs the plugin binaries of a network configuration list for
 * one attachment (container ID + network namespace + interface name).
 *  - ADD runs the list's plugins in order, each given the previous one's result as
 *    `prevResult`; the last result is the attachment's. A failed ADD is undone by a DEL of the
 *    whole list (the runtime's duty in the spec), and the error is the failing plugin's.
 *  - DEL runs them in reverse, each given the cached ADD result; it is idempotent: a DEL of an
 *    attachment that has no cache entry still runs (plugins must tolerate missing resources),
 *    and a second DEL finds nothing to do.
 *  - CHECK runs them in order with the cached result (skipped when the list says disableCheck).
 *  - VERSION asks one plugin binary which spec versions it speaks.
 * The result cache is what libcni keeps in /var/lib/cni/results: per attachment, the config
 * list, the CNI_ARGS, the capability arguments and the ADD result, written atomically, so a
 * DEL after a daemon restart gets exactly what the ADD was given and returned.
 * Capability arguments (`portMappings`, `ipRanges`, `mac`, `ips`, …) reach a plugin as
 * `runtimeConfig` only when its configuration declares that capability, as the spec says.
 */
import { access, constants, mkdir, readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicWriteFile } from '@berth/core';
import { runWithStdin } from './spawn.js';

/** One plugin of a configuration list (its own keys are passed through untouched). */
export interface CniPluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

/** A network configuration list (`.conflist`). */
export interface CniConfList {
  cniVersion: string;
  name: string;
  disableCheck?: boolean;
  plugins: CniPluginConf[];
}

/** What identifies one attachment, and what the runtime passes besides the config. */
export interface CniAttachment {
  containerId: string;
  /** Path of the network namespace (a bind-mounted nsfs file). */
  netns: string;
  ifName: string;
  /** CNI_ARGS as key/value pairs (e.g. IgnoreUnknown=1, K8S_POD_NAME=…). */
  args?: [string, string][];
  /** Capability arguments, given to plugins that declare the capability (runtimeConfig). */
  capabilityArgs?: Record<string, unknown>;
}

/** A result of ADD (the 1.0.0 shape; 0.4.0 is the same for what berth reads). */
export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string; mtu?: number }[];
  ips?: { address: string; gateway?: string; interface?: number; version?: string }[];
  routes?: { dst: string; gw?: string }[];
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
  [key: string]: unknown;
}

/** A plugin's refusal: the spec's error object, with the plugin that gave it. */
export class CniError extends Error {
  constructor(
    readonly plugin: string,
    readonly command: string,
    readonly code: number,
    readonly msg: string,
    readonly details?: string,
  ) {
    super(`CNI plugin ${plugin} failed (${command}): ${msg}${details ? `: ${details}` : ''}${code ? ` (code ${code})` : ''}`);
    this.name = 'CniError';
  }
}

/** How a plugin binary is run (tests replace it). */
export type CniExec = (binary: string, env: Record<string, string>, stdin: string, timeoutMs: number) => Promise<{ code: number | null; stdout: string; stderr: string }>;

/** Run a binary with only the given environment, stdin written, stdout/stderr collected (spawn.ts: without forking the daemon when it can). */
export const execPlugin: CniExec = (binary, env, stdin, timeoutMs) => runWithStdin(binary, env, stdin, timeoutMs);

const TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const CACHE_KIND = 'berthCniCacheV1';

/** Validate a configuration list as the spec requires; returns it typed. */
export function parseConfList(input: unknown): CniConfList {
  const o = typeof input === 'string' ? (JSON.parse(input) as unknown) : input;
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Error('CNI config list: not a JSON object');
  const l = o as Record<string, unknown>;
  if (typeof l.name !== 'string' || !NAME_RE.test(l.name)) throw new Error(`CNI config list: invalid name ${JSON.stringify(l.name)}`);
  if (typeof l.cniVersion !== 'string' || !/^\d+\.\d+\.\d+$/.test(l.cniVersion)) throw new Error(`CNI config list ${l.name}: invalid cniVersion ${JSON.stringify(l.cniVersion)}`);
  if (!Array.isArray(l.plugins) || l.plugins.length === 0) throw new Error(`CNI config list ${l.name}: "plugins" must be a non-empty array`);
  for (const p of l.plugins as unknown[]) {
    const t = (p as Record<string, unknown> | null)?.type;
    if (typeof t !== 'string' || !TYPE_RE.test(t)) throw new Error(`CNI config list ${l.name}: invalid plugin type ${JSON.stringify(t)}`);
  }
  if (l.disableCheck !== undefined && typeof l.disableCheck !== 'boolean') throw new Error(`CNI config list ${l.name}: disableCheck must be a boolean`);
  return l as unknown as CniConfList;
}

interface CacheEntry {
  kind: typeof CACHE_KIND;
  containerId: string;
  ifName: string;
  netns: string;
  networkName: string;
  config: CniConfList;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  result?: CniResult;
}

export interface CniRunnerOptions {
  /** Where plugin binaries are looked up, in order (CNI_PATH). */
  binDirs: string[];
  /** The result cache's directory. */
  cacheDir: string;
  exec?: CniExec;
  /** Per plugin invocation (default 60 s). */
  timeoutMs?: number;
}

export class CniRunner {
  private readonly exec: CniExec;
  private readonly timeoutMs: number;
  constructor(private readonly opts: CniRunnerOptions) {
    this.exec = opts.exec ?? execPlugin;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  /** The binary of a plugin type, from the first directory that has it. */
  async find(type: string): Promise<string> {
    if (!TYPE_RE.test(type)) throw new Error(`invalid CNI plugin type ${JSON.stringify(type)}`);
    for (const d of this.opts.binDirs) {
      const p = join(d, type);
      try {
        await access(p, constants.X_OK);
        return p;
      } catch {
        // next directory
      }
    }
    throw new Error(`CNI plugin ${type} not found in ${this.opts.binDirs.join(':')}`);
  }

  /** VERSION of one plugin type. */
  async version(type: string): Promise<{ cniVersion: string; supportedVersions: string[] }> {
    const out = await this.invoke(type, 'VERSION', { cniVersion: '1.0.0' }, undefined);
    return out as unknown as { cniVersion: string; supportedVersions: string[] };
  }

  /** ADD the attachment: the chain in order; on failure the chain is deleted again and the error thrown. */
  async add(list: CniConfList, a: CniAttachment): Promise<CniResult> {
    const entry: CacheEntry = { kind: CACHE_KIND, containerId: a.containerId, ifName: a.ifName, netns: a.netns, networkName: list.name, config: list, ...(a.args ? { cniArgs: a.args } : {}), ...(a.capabilityArgs ? { capabilityArgs: a.capabilityArgs } : {}) };
    // cached before the first plugin runs: a daemon killed halfway still DELs what ADD began
    await this.writeCache(entry);
    let prev: CniResult | undefined;
    try {
      for (const p of list.plugins) prev = await this.invoke(p.type, 'ADD', this.pluginConf(list, p, a, prev), a);
    } catch (err) {
      await this.del(a, list).catch(() => {});
      throw err;
    }
    const result = prev as CniResult;
    await this.writeCache({ ...entry, result });
    return result;
  }

  /** CHECK the attachment against its cached ADD result (a no-op when the list disables it). */
  async check(a: CniAttachment): Promise<void> {
    const entry = await this.readCache(a);
    if (!entry?.result) throw new Error(`CNI: no cached result for ${a.containerId}/${a.ifName}: nothing to check`);
    if (entry.config.disableCheck) return;
    for (const p of entry.config.plugins) await this.invoke(p.type, 'CHECK', this.pluginConf(entry.config, p, a, entry.result), a);
  }

  /**
   * DEL the attachment: the chain in reverse with the cached result. `list` is used when the
   * cache has no entry (an ADD that never wrote one); with neither there is nothing to undo.
   */
  async del(a: Pick<CniAttachment, 'containerId' | 'ifName'> & Partial<CniAttachment>, list?: CniConfList): Promise<void> {
    const entry = await this.readCache(a);
    const config = entry?.config ?? list;
    if (!config) return;
    const att: CniAttachment = {
      containerId: a.containerId,
      ifName: a.ifName,
      netns: a.netns ?? entry?.netns ?? '',
      ...((entry?.cniArgs ?? a.args) ? { args: entry?.cniArgs ?? a.args } : {}),
      ...((entry?.capabilityArgs ?? a.capabilityArgs) ? { capabilityArgs: entry?.capabilityArgs ?? a.capabilityArgs } : {}),
    };
    let first: unknown;
    for (const p of [...config.plugins].reverse()) {
      try {
        await this.invoke(p.type, 'DEL', this.pluginConf(config, p, att, entry?.result), att);
      } catch (err) {
        first ??= err; // the others still run: each releases its own part
      }
    }
    if (first) throw first;
    await unlink(this.cachePath(a)).catch(() => {});
  }

  /**
   * The attachments of a container that the cache holds (ADDed or begun, not yet DELeted): the
   * container's active endpoints, also after a daemon restart.
   */
  async attachments(containerId: string): Promise<Array<{ ifName: string; networkName: string; netns: string; result?: CniResult }>> {
    if (!NAME_RE.test(containerId)) return [];
    let files: string[];
    try {
      files = await readdir(this.opts.cacheDir);
    } catch {
      return [];
    }
    const out: Array<{ ifName: string; networkName: string; netns: string; result?: CniResult }> = [];
    for (const f of files) {
      if (!f.startsWith(`${containerId}-`) || !f.endsWith('.json')) continue;
      const e = await this.readCache({ containerId, ifName: f.slice(containerId.length + 1, -'.json'.length) });
      if (e) out.push({ ifName: e.ifName, networkName: e.networkName, netns: e.netns, ...(e.result ? { result: e.result } : {}) });
    }
    return out;
  }

  /** The cached ADD result of an attachment (undefined when none). */
  async cachedResult(a: Pick<CniAttachment, 'containerId' | 'ifName'>): Promise<CniResult | undefined> {
    return (await this.readCache(a))?.result;
  }

  private pluginConf(list: CniConfList, p: CniPluginConf, a: CniAttachment, prev: CniResult | undefined): Record<string, unknown> {
    const conf: Record<string, unknown> = { ...p, cniVersion: list.cniVersion, name: list.name };
    delete conf.runtimeConfig;
    const caps = p.capabilities ?? {};
    const rc: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(a.capabilityArgs ?? {})) if (caps[k] === true) rc[k] = v;
    if (Object.keys(rc).length) conf.runtimeConfig = rc;
    if (prev) conf.prevResult = prev;
    return conf;
  }

  private async invoke(type: string, command: string, conf: Record<string, unknown>, a: CniAttachment | undefined): Promise<CniResult> {
    const binary = await this.find(type);
    const env: Record<string, string> = {
      CNI_COMMAND: command,
      CNI_PATH: this.opts.binDirs.join(':'),
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    };
    if (a) {
      env.CNI_CONTAINERID = a.containerId;
      env.CNI_NETNS = a.netns;
      env.CNI_IFNAME = a.ifName;
      if (a.args?.length) env.CNI_ARGS = a.args.map(([k, v]) => `${k}=${v}`).join(';');
    }
    const r = await this.exec(binary, env, JSON.stringify(conf), this.timeoutMs);
    let out: Record<string, unknown> | undefined;
    if (r.stdout.trim()) {
      try {
        out = JSON.parse(r.stdout) as Record<string, unknown>;
      } catch {
        if (r.code === 0) throw new CniError(type, command, 0, `unparsable output ${JSON.stringify(r.stdout.slice(0, 200))}`);
      }
    }
    if (r.code !== 0) {
      if (out && typeof out.msg === 'string') throw new CniError(type, command, Number(out.code ?? 0), out.msg, typeof out.details === 'string' && out.details ? out.details : undefined);
      throw new CniError(type, command, 0, r.code === null ? `killed after ${this.timeoutMs} ms` : `exit status ${r.code}`, r.stderr.trim().slice(0, 500) || undefined);
    }
    return (out ?? { cniVersion: String(conf.cniVersion) }) as CniResult;
  }

  /** One file per attachment: an interface name is unique in its container's namespace. */
  private cachePath(a: Pick<CniAttachment, 'containerId' | 'ifName'>): string {
    if (!NAME_RE.test(a.containerId) || !NAME_RE.test(a.ifName)) throw new Error(`CNI: invalid container ID or interface name ${JSON.stringify(`${a.containerId}/${a.ifName}`)}`);
    return join(this.opts.cacheDir, `${a.containerId}-${a.ifName}.json`);
  }

  private async writeCache(e: CacheEntry): Promise<void> {
    await mkdir(this.opts.cacheDir, { recursive: true, mode: 0o700 });
    await atomicWriteFile(this.cachePath(e), JSON.stringify(e), { mode: 0o600 });
  }

  private async readCache(a: Pick<CniAttachment, 'containerId' | 'ifName'>): Promise<CacheEntry | undefined> {
    try {
      const e = JSON.parse(await readFile(this.cachePath(a), 'utf8')) as CacheEntry;
      return e.kind === CACHE_KIND && e.containerId === a.containerId && e.ifName === a.ifName ? e : undefined;
    } catch {
      return undefined; // none, or a torn or foreign file: nothing cached
    }
  }
}
