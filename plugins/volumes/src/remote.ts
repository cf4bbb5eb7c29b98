/**
 * Docker's volume-plugin protocol (moby pkg/plugins, volume/drivers/proxy.go): a volume
 * plugin is an HTTP server on a unix socket, found by name as `<name>.sock` (or
 * `<name>/<name>.sock`) in a sockets dir, or through a `<name>.spec` file (one line, the
 * address: `unix:///path.sock`) or `<name>.json` file (`{"Name", "Addr"}`) in a specs dir.
 * It is activated once (`POST /Plugin.Activate` → `{"Implements": ["VolumeDriver"]}`), then
 * every call is `POST /VolumeDriver.<Call>` with a JSON body; a non-empty `Err` in the answer
 * is the call's error. Only unix sockets are dialled (a tcp address is refused: berth talks
 * to plugins on this host only).
 */
import { request } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidParameterError, NotFoundError, NotImplementedError, SystemError } from '@berth/core';
import type { DriverVolume, VolumeDriver } from './types.js';

const MEDIA_TYPE = 'application/vnd.docker.plugins.v1.2+json';

/** Where plugins are looked for (moby's defaults); tests pass their own. */
export const DEFAULT_PLUGIN_DIRS: readonly string[] = Object.freeze(['/run/docker/plugins', '/etc/docker/plugins', '/usr/lib/docker/plugins']);

const isFile = (p: string) => stat(p).then(() => true, () => false);

function socketOf(addr: string, from: string): string {
  const a = addr.trim();
  if (a.startsWith('unix://')) return a.slice('unix://'.length);
  throw new NotImplementedError(`volume plugin address ${JSON.stringify(a)} (from ${from}): only unix sockets are supported`);
}

/**
 * The socket of volume plugin `name` in `dirs` (each a sockets and a specs dir, in order), or
 * null when none is found. The name is a driver name checked like a volume name, so it never
 * walks out of a dir.
 */
export async function findPluginSocket(name: string, dirs: readonly string[]): Promise<string | null> {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw new InvalidParameterError(`invalid volume driver name: ${JSON.stringify(name)}`);
  for (const dir of dirs) {
    for (const sock of [join(dir, `${name}.sock`), join(dir, name, `${name}.sock`)]) if (await isFile(sock)) return sock;
    for (const base of [join(dir, `${name}.spec`), join(dir, name, `${name}.spec`)]) {
      if (await isFile(base)) return socketOf(await readFile(base, 'utf8'), base);
    }
    for (const base of [join(dir, `${name}.json`), join(dir, name, `${name}.json`)]) {
      if (await isFile(base)) {
        const spec = JSON.parse(await readFile(base, 'utf8')) as { Addr?: unknown };
        if (typeof spec.Addr !== 'string') throw new InvalidParameterError(`volume plugin spec ${base}: no Addr`);
        return socketOf(spec.Addr, base);
      }
    }
  }
  return null;
}

/** One POST of the protocol: JSON in, JSON out; transport failures and non-2xx answers are SystemErrors naming the call. */
export function pluginCall<T extends object>(socket: string, call: string, body: unknown, timeoutMs = 30_000): Promise<T & { Err?: string }> {
  const payload = JSON.stringify(body ?? {});
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: socket, method: 'POST', path: `/${call}`, headers: { Accept: MEDIA_TYPE, 'Content-Type': MEDIA_TYPE, 'Content-Length': Buffer.byteLength(payload) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: (T & { Err?: string }) | undefined;
          try {
            parsed = text ? (JSON.parse(text) as T & { Err?: string }) : ({} as T & { Err?: string });
          } catch {
            parsed = undefined;
          }
          const status = res.statusCode ?? 0;
          if (status === 404) return reject(new NotFoundError(`volume plugin ${socket}: ${call} is not implemented`));
          if (status < 200 || status >= 300 || !parsed) {
            return reject(new SystemError(`volume plugin ${socket}: ${call}: ${parsed?.Err || `HTTP ${status}: ${text.slice(0, 200)}`}`));
          }
          resolve(parsed);
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new SystemError(`volume plugin ${socket}: ${call} timed out after ${timeoutMs}ms`)));
    req.on('error', (err) => reject(err instanceof SystemError ? err : new SystemError(`volume plugin ${socket}: ${call}: ${err.message}`, { cause: err })));
    req.end(payload);
  });
}

/** A volume driver served by a Docker volume plugin on a unix socket. */
export class RemoteDriver implements VolumeDriver {
  private activated: Promise<void> | undefined;
  constructor(
    readonly name: string,
    private readonly socket: string,
  ) {}

  /** The handshake, once (retried after a failure). */
  activate(): Promise<void> {
    this.activated ??= pluginCall<{ Implements?: string[] }>(this.socket, 'Plugin.Activate', {}).then(
      (r) => {
        if (!(r.Implements ?? []).includes('VolumeDriver')) {
          throw new InvalidParameterError(`plugin ${this.name} does not implement the VolumeDriver protocol (it implements ${JSON.stringify(r.Implements ?? [])})`);
        }
      },
      (err: unknown) => {
        this.activated = undefined;
        throw err;
      },
    );
    return this.activated;
  }

  private async call<T extends object>(call: string, body: object): Promise<T> {
    await this.activate();
    const r = await pluginCall<T>(this.socket, `VolumeDriver.${call}`, body);
    if (r.Err) throw new SystemError(`volume driver ${this.name}: ${call}: ${r.Err}`);
    return r;
  }

  async create(name: string, opts: Readonly<Record<string, string>>): Promise<void> {
    await this.call('Create', { Name: name, Opts: opts });
  }

  async remove(name: string): Promise<void> {
    await this.call('Remove', { Name: name });
  }

  async mount(name: string, id: string): Promise<string> {
    const r = await this.call<{ Mountpoint?: string }>('Mount', { Name: name, ID: id });
    if (!r.Mountpoint) throw new SystemError(`volume driver ${this.name}: Mount of ${name} returned no Mountpoint`);
    return r.Mountpoint;
  }

  async unmount(name: string, id: string): Promise<void> {
    await this.call('Unmount', { Name: name, ID: id });
  }

  async path(name: string): Promise<string> {
    return (await this.call<{ Mountpoint?: string }>('Path', { Name: name })).Mountpoint ?? '';
  }

  async get(name: string): Promise<DriverVolume | null> {
    const r = await this.call<{ Volume?: { Name: string; Mountpoint?: string; Status?: Record<string, unknown> } }>('Get', { Name: name }).catch(() => null);
    if (!r?.Volume) return null;
    return { name: r.Volume.Name, mountpoint: r.Volume.Mountpoint ?? '', ...(r.Volume.Status ? { status: r.Volume.Status } : {}) };
  }

  async list(): Promise<DriverVolume[]> {
    const r = await this.call<{ Volumes?: Array<{ Name: string; Mountpoint?: string }> }>('List', {});
    return (r.Volumes ?? []).map((v) => ({ name: v.Name, mountpoint: v.Mountpoint ?? '' }));
  }

  async capabilities(): Promise<{ scope: 'local' | 'global' }> {
    try {
      const r = await this.call<{ Capabilities?: { Scope?: string } }>('Capabilities', {});
      return { scope: r.Capabilities?.Scope === 'global' ? 'global' : 'local' };
    } catch (err) {
      // Capabilities is optional in the protocol (moby: a plugin without it is local).
      if (err instanceof NotFoundError) return { scope: 'local' };
      throw err;
    }
  }
}
