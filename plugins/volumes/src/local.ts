/**
 * The `local` volume driver (moby volume/local): a volume is the directory
 * `<root>/<name>/_data`. DriverOpts `type`, `device`, `o` make it a mount instead — a tmpfs
 * (`type=tmpfs,device=tmpfs,o=size=64m`), a bind (`type=none,o=bind,device=/srv/x`) or any
 * filesystem mount(8) knows — mounted at `_data` at first use and unmounted at last release.
 * Who still uses a volume is the service's to say (`inUse`), from the container records, so
 * a daemon killed in between never leaves a count behind.
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { InvalidParameterError, NotFoundError, SystemError, mountOf, readMountInfo } from '@berth/core';
import type { DriverVolume, VolumeDriver } from './types.js';

const run = promisify(execFile);

/** The DriverOpts the local driver knows (moby's validOpts on Linux, without the xfs quota `size`). */
export const LOCAL_OPTIONS: readonly string[] = Object.freeze(['type', 'device', 'o']);

/** Check a local volume's DriverOpts as dockerd does: known keys only; a `device` needs a `type`. */
export function validateLocalOptions(opts: Readonly<Record<string, string>>): void {
  for (const k of Object.keys(opts)) {
    if (!LOCAL_OPTIONS.includes(k)) throw new InvalidParameterError(`invalid option: "${k}"`);
  }
  if (opts.device && !opts.type) throw new InvalidParameterError('missing required option: "type"');
}

export interface LocalDriverDeps {
  /** `<data-root>/volumes`. */
  root: string;
  /** The DriverOpts a volume was created with (the service's metadata). */
  options(name: string): Readonly<Record<string, string>>;
  /** Whether a container other than `except` still has the volume mounted (running). */
  inUse(name: string, except: string): boolean;
}

export class LocalDriver implements VolumeDriver {
  readonly name = 'local';
  constructor(private readonly d: LocalDriverDeps) {}

  dataPath(name: string): string {
    return join(this.d.root, name, '_data');
  }

  async create(name: string, opts: Readonly<Record<string, string>>): Promise<void> {
    validateLocalOptions(opts);
    await mkdir(join(this.d.root, name), { recursive: true, mode: 0o701 });
    await mkdir(this.dataPath(name), { recursive: true, mode: 0o755 });
  }

  async remove(name: string): Promise<void> {
    const data = this.dataPath(name);
    if (await this.mounted(data)) await this.umount(data);
    await rm(join(this.d.root, name), { recursive: true, force: true });
  }

  async mount(name: string, _id: string): Promise<string> {
    const data = this.dataPath(name);
    await stat(data).catch(() => {
      throw new NotFoundError(`volume ${name}: its data directory ${data} is missing`);
    });
    const o = this.d.options(name);
    if (o.type && !(await this.mounted(data))) {
      const args = ['-t', o.type, ...(o.o ? ['-o', o.o] : []), o.device ?? o.type, data];
      await run('mount', args).catch((err: unknown) => {
        throw new SystemError(`error while mounting volume '${data}': mount ${args.join(' ')}: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`, { cause: err });
      });
    }
    return data;
  }

  async unmount(name: string, id: string): Promise<void> {
    const o = this.d.options(name);
    if (!o.type || this.d.inUse(name, id)) return;
    const data = this.dataPath(name);
    if (await this.mounted(data)) await this.umount(data);
  }

  async path(name: string): Promise<string> {
    return this.dataPath(name);
  }

  async get(name: string): Promise<DriverVolume | null> {
    const data = this.dataPath(name);
    return (await stat(data).then(() => true, () => false)) ? { name, mountpoint: data } : null;
  }

  async list(): Promise<DriverVolume[]> {
    const names = await readdir(this.d.root).catch(() => [] as string[]);
    const out: DriverVolume[] = [];
    for (const n of names) if (await this.get(n)) out.push({ name: n, mountpoint: this.dataPath(n) });
    return out;
  }

  async capabilities(): Promise<{ scope: 'local' }> {
    return { scope: 'local' };
  }

  private async mounted(p: string): Promise<boolean> {
    return mountOf(p, await readMountInfo())?.mountPoint === p;
  }

  private async umount(p: string): Promise<void> {
    await run('umount', [p]).catch((err: unknown) => {
      throw new SystemError(`error while unmounting volume path '${p}': ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`, { cause: err });
    });
  }
}
