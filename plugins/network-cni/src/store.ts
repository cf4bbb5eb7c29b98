/**
 * The network store: Docker's networks as berth keeps them, one JSON file per network under
 * `<data-root>/network-cni/networks/<id>.json`, written atomically (a daemon killed mid-write
 * leaves the old file or the new one), read back at the plugin's start. Lookups as dockerd's
 * FindNetwork: full ID, then exact name, then a unique ID prefix.
 */
import { mkdir, readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ConflictError, NotFoundError, atomicWriteFile } from '@berth/core';
import type { CniConfList } from './cni.js';

export interface IpamPoolConfig {
  Subnet: string;
  Gateway?: string;
  IPRange?: string;
}

/** A network as Docker's API shows it (without Containers), plus how berth runs it. */
export interface NetworkRecord {
  Name: string;
  Id: string;
  Created: string;
  Scope: 'local';
  /** bridge, host, null, or the type of a CNI plugin whose conflist is in the config dir. */
  Driver: string;
  EnableIPv4: boolean;
  EnableIPv6: boolean;
  IPAM: { Driver: string; Options: Record<string, string> | null; Config: IpamPoolConfig[] };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  Options: Record<string, string>;
  Labels: Record<string, string>;
  /** berth's own: the Linux bridge, MTU and (custom drivers) the conflist file it was made from. Not in the API. */
  berth: { bridge?: string; mtu?: number; confFile?: string; conflist?: CniConfList; builtin?: boolean; fixedCidr?: string };
}

export const PREDEFINED = ['bridge', 'host', 'none'] as const;

export class NetworkStore {
  private readonly byId = new Map<string, NetworkRecord>();
  constructor(private readonly dir: string) {}

  async load(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const f of await readdir(this.dir)) {
      if (!/^[0-9a-f]{64}\.json$/.test(f)) continue; // temp files of an interrupted write
      try {
        const n = JSON.parse(await readFile(join(this.dir, f), 'utf8')) as NetworkRecord;
        if (n.Id === f.slice(0, 64)) this.byId.set(n.Id, n);
      } catch {
        // unreadable: skipped (the atomic write never leaves a torn file)
      }
    }
  }

  list(): NetworkRecord[] {
    return [...this.byId.values()];
  }

  /** dockerd's lookup: full ID, exact name, unique ID prefix; undefined when none. */
  find(ref: string): NetworkRecord | undefined {
    const byId = this.byId.get(ref);
    if (byId) return byId;
    const byName = this.list().find((n) => n.Name === ref);
    if (byName) return byName;
    if (!/^[0-9a-f]+$/.test(ref)) return undefined;
    const matches = this.list().filter((n) => n.Id.startsWith(ref));
    if (matches.length > 1) throw new ConflictError(`network ${ref} is ambiguous (${matches.length} matches found based on ID prefix)`);
    return matches[0];
  }

  /** Like find; NotFound with dockerd's message. */
  get(ref: string): NetworkRecord {
    const n = this.find(ref);
    if (!n) throw new NotFoundError(`network ${ref} not found`);
    return n;
  }

  async save(n: NetworkRecord): Promise<void> {
    await atomicWriteFile(join(this.dir, `${n.Id}.json`), JSON.stringify(n, null, 1), { mode: 0o600 });
    this.byId.set(n.Id, n);
  }

  async remove(id: string): Promise<void> {
    await unlink(join(this.dir, `${id}.json`)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    this.byId.delete(id);
  }
}
