/**
 * `docker rm` under the container's lock (dockerd's cleanupContainer): a running container
 * only with force (SIGKILL and the exit first, or a pending policy restart cancelled),
 * `beforeRemove` (refuses unless forced), state `removing`, the release hooks if still set
 * up, the backend's delete (always: it may hold leftovers), the directory; a failure midway
 * leaves the container `dead`. Then `destroy`, onStateChange(removing → null) and the
 * `removed` waiters.
 */
import { ConflictError, SystemError, errorMessage, noSuchContainer } from './errors.js';
import type { ExitHandler } from './exit-handler.js';
import { failpoint } from './failpoint.js';
import type { ContainerKernel } from './kernel.js';
import { FP } from './points.js';
import type { RestartManager } from './restart-manager.js';
import { isActive, resetRemoving, setDead, setRemoving } from './state.js';
import type { Stopper } from './stop-kill.js';
import type { ContainerRecord } from './types.js';

export interface RemoveOptions {
  force?: boolean;
  volumes?: boolean;
}

/** The parts of the service a removal uses. */
export interface RemoveParts {
  stopper: Stopper;
  exits: ExitHandler;
  restarts: RestartManager;
}

/** Remove a container (called under its lock). */
export async function removeLocked(k: ContainerKernel, p: RemoveParts, rec: ContainerRecord, opts: RemoveOptions): Promise<void> {
  const id = rec.ID;
  if (!k.index.has(id)) throw noSuchContainer(id);
  if (rec.RemovalInProgress) throw new ConflictError(`removal of container ${id} is already in progress`);
  if (isActive(rec)) {
    if (!opts.force) {
      throw new ConflictError(`cannot remove container "${rec.Name}": container is ${rec.State.Status}: stop the container before removing or force remove`);
    }
    rec.HasBeenManuallyStopped = true;
    if (rec.State.Status === 'restarting') {
      await p.restarts.cancel(rec, 'remove');
    } else {
      await p.stopper.killAndWait(rec, p.exits.nextExitDone(id));
      await p.exits.settled(id);
    }
  }
  try {
    await k.d.hooks.beforeRemove.promise({ container: structuredClone(rec), force: !!opts.force, volumes: !!opts.volumes });
  } catch (err) {
    if (!opts.force) throw err;
    k.d.logger.warn('beforeRemove failed; removing anyway (force)', { container: id, error: errorMessage(err) });
  }
  const prev = setRemoving(rec);
  // After a crash from here on, the restore removes a container marked for removal, and
  // also an auto-remove container that has run: that one needs no save first.
  if (!(rec.HostConfig.AutoRemove && rec.HasBeenStartedBefore)) await k.persistQuietly(rec);
  failpoint(FP.removeAfterRemovingSave);
  await k.stateChange(rec, prev, 'removing', 'remove');
  try {
    if (k.live.delete(id)) await k.release(rec, 'remove');
    // Always (when its backend is there): it may hold leftovers this engine does not know of.
    if (k.inBackend.has(id) || !rec.RuntimeBackend || k.d.backends.get(rec.RuntimeBackend)) await k.backendOf(rec).delete(id, { force: true });
    k.inBackend.delete(id);
    failpoint(FP.removeAfterBackendDelete);
    await k.d.provenance.written(id);
    await k.d.store.remove(id);
  } catch (err) {
    resetRemoving(rec, prev);
    setDead(rec, `unable to remove container: ${errorMessage(err)}`);
    await k.persistQuietly(rec);
    throw new SystemError(`unable to remove container ${id}: ${errorMessage(err)}`, { cause: err });
  }
  k.index.remove(rec);
  k.d.provenance.forget(id);
  k.specs.delete(id);
  k.emit(rec, 'destroy');
  await k.stateChange(rec, 'removing', null, 'remove');
  k.waits.resolve(rec, ['removed', 'not-running', 'next-exit']);
  p.exits.dropListeners(id);
}
