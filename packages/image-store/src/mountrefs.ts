/**
 * Who holds a container's root filesystem mount. The engine holds it from start (the
 * plugin's beforeMount) until release (the unmount hook): one hold however often it mounts.
 * Each request that needs the files of a container that may not run (docker cp, docker
 * export) adds a counted lease for its duration. The mount stays while anyone holds it and
 * the last one to let go unmounts — dockerd's graphdriver RefCounter does the same for its
 * Get/Put. Mounts and unmounts of one container run one at a time (a per-container lock), so
 * a start racing with a cp never unmounts the other's mount and two cps never stack two
 * overlay mounts on one directory.
 */
import { KeyedLock } from '@berth/core';

export interface MountOps {
  isMounted(id: string): boolean;
  /** Mounts (a no-op when mounted) and returns the path. */
  mount(id: string): Promise<string>;
  /** Unmounts (a no-op when not mounted). */
  unmount(id: string): Promise<void>;
}

export interface MountLease {
  readonly path: string;
  /** Gives the lease back (idempotent); the last holder's release unmounts. */
  release(): Promise<void>;
}

export class MountRefs {
  private readonly lock = new KeyedLock();
  private readonly leases = new Map<string, number>();
  private readonly engine = new Set<string>();

  constructor(private readonly ops: MountOps) {}

  /** The engine's mount at start. */
  engineMount(id: string): Promise<string> {
    return this.lock.run(id, async () => {
      const p = await this.ops.mount(id);
      this.engine.add(id);
      return p;
    });
  }

  /** The engine lets go (failed start, exit, restore of a dead container): unmounts unless a lease holds the mount. */
  engineUnmount(id: string): Promise<void> {
    return this.lock.run(id, async () => {
      this.engine.delete(id);
      if ((this.leases.get(id) ?? 0) > 0) return;
      await this.ops.unmount(id);
    });
  }

  /** A counted lease on the mount, mounting it when nobody holds it. */
  acquire(id: string): Promise<MountLease> {
    return this.lock.run(id, async () => {
      const n = this.leases.get(id) ?? 0;
      // Mounted with no holder on record: the engine's mount from before a daemon restart
      // (a running container restored). Leave it to the engine, whose unmount hook ends it.
      if (n === 0 && !this.engine.has(id) && this.ops.isMounted(id)) this.engine.add(id);
      const p = await this.ops.mount(id);
      this.leases.set(id, n + 1);
      let released = false;
      return {
        path: p,
        release: () => {
          if (released) return Promise.resolve();
          released = true;
          return this.releaseOne(id);
        },
      };
    });
  }

  private releaseOne(id: string): Promise<void> {
    return this.lock.run(id, async () => {
      const n = (this.leases.get(id) ?? 1) - 1;
      if (n > 0) {
        this.leases.set(id, n);
        return;
      }
      this.leases.delete(id);
      if (!this.engine.has(id)) await this.ops.unmount(id);
    });
  }

  /** Drops every hold of a container whose root filesystem is being deleted; then unmounts. */
  forget(id: string): Promise<void> {
    return this.lock.run(id, async () => {
      this.leases.delete(id);
      this.engine.delete(id);
      await this.ops.unmount(id);
    });
  }

  /** Current holders (for tests and diagnostics). */
  holders(id: string): { engine: boolean; leases: number } {
    return { engine: this.engine.has(id), leases: this.leases.get(id) ?? 0 };
  }
}
