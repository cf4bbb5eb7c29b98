/**
 * Live restore at engine start (dockerd's restore): the stored records are indexed and each
 * is reconciled with the backend that holds it — still running → running; exited meanwhile
 * → exited with its real exit code and FinishedAt; gone without an exit status →
 * EXIT_CODE_UNKNOWN (dockerd's 255); its backend not there → dead. Then removals a crash cut
 * short are finished, and restart policies start what they want at boot.
 */
import { normaliseTime } from './clock.js';
import { errorMessage } from './errors.js';
import { EXIT_CODE_UNKNOWN } from './exit-codes.js';
import type { ExitHandler } from './exit-handler.js';
import type { ContainerKernel } from './kernel.js';
import { startAfterLinkTargets } from './links.js';
import { holders, listHoldings, type Holdings } from './reconcile.js';
import type { RestartManager } from './restart-manager.js';
import type { RuntimeStateInfo } from './runtime.js';
import { isActive, setDead, setPaused, setRunning, setStopped, setUnpaused } from './state.js';
import type { ContainerRecord } from './types.js';

export interface RestoreDeps {
  exits: ExitHandler;
  restarts: RestartManager;
  /** Remove a container (called under its lock). */
  removeLocked(rec: ContainerRecord): Promise<void>;
  /** Start a container (called under its lock). */
  startLocked(rec: ContainerRecord): Promise<void>;
}

/**
 * Load and reconcile the stored containers. Returns what each backend held, for the orphan
 * sweep right after (one listing per engine start).
 */
export async function restoreContainers(k: ContainerKernel, d: RestoreDeps, records: ContainerRecord[]): Promise<Map<string, Holdings>> {
  const { logger } = k.d;
  for (const rec of records) {
    const { renamedFrom } = k.index.addLoaded(rec);
    if (renamedFrom) logger.error('two stored containers share a name; renaming the later one', { container: rec.ID, name: renamedFrom });
  }
  // Which backend holds which container, whatever the records say: a crash between the
  // runtime's create and a save leaves records that do not name their backend yet.
  const holdings = await listHoldings(k.d.backends.all());
  const held = holders(holdings);
  await Promise.all(
    records.map((rec) =>
      k.withLock(rec.ID, () => restoreOne(k, d, rec, held.get(rec.ID))).catch((err) => logger.error('restore failed', { container: rec.ID, error: errorMessage(err) })),
    ),
  );
  for (const rec of records) {
    if (k.index.has(rec.ID) && (rec.RemovalInProgress || (rec.HostConfig.AutoRemove && !isActive(rec) && rec.HasBeenStartedBefore))) {
      rec.RemovalInProgress = false;
      if (rec.State.Status === 'removing') rec.State.Status = 'exited';
      await k.withLock(rec.ID, () => d.removeLocked(rec)).catch((err) => logger.error('finishing removal failed', { container: rec.ID, error: errorMessage(err) }));
    }
  }
  // Restart policies at boot (dockerd's restore): always, unless-stopped not stopped by hand, on-failure.
  const boot = k.index
    .all()
    .filter((rec) => !isActive(rec) && rec.HasBeenStartedBefore && !rec.RemovalInProgress && rec.State.Status !== 'dead' && d.restarts.policyWants(rec, rec.State.ExitCode));
  // a linked container first (dockerd waits for a container's links too)
  await startAfterLinkTargets(boot, (rec) =>
    k.withLock(rec.ID, () => d.startLocked(rec)).catch((err) => logger.error('starting container by its restart policy failed', { container: rec.ID, error: errorMessage(err) })),
  );
  return holdings;
}

async function restoreOne(k: ContainerKernel, d: RestoreDeps, rec: ContainerRecord, holder?: string): Promise<void> {
  const { hooks, info, logger, backends } = k.d;
  const afterLiveRestore = (state: RuntimeStateInfo | null) => hooks.afterLiveRestore.promise({ container: structuredClone(rec), state, engine: info });
  if (rec.State.Status === 'restarting') {
    // It had exited and was waiting for its policy restart: nothing runs; the boot pass restarts it.
    setStopped(rec, { exitCode: rec.State.ExitCode, oomKilled: rec.State.OOMKilled, finishedAt: rec.State.FinishedAt });
    await k.persistQuietly(rec);
    await afterLiveRestore(null);
    return;
  }
  const wasActive = isActive(rec);
  if (!rec.RuntimeBackend && holder) rec.RuntimeBackend = holder;
  if (!wasActive && !rec.RuntimeBackend) return;
  const backend = rec.RuntimeBackend ? backends.get(rec.RuntimeBackend) : backends.default();
  if (!backend) {
    if (wasActive) {
      const from = rec.State.Status;
      setDead(rec, `runtime backend ${rec.RuntimeBackend} is not available`);
      if (rec.State.ExitCode === 0) rec.State.ExitCode = EXIT_CODE_UNKNOWN;
      await k.persistQuietly(rec);
      await k.stateChange(rec, from, 'dead', 'restore');
    }
    return;
  }
  let st: RuntimeStateInfo | null;
  try {
    st = await backend.restore(rec.ID);
  } catch (err) {
    logger.error('runtime restore failed', { container: rec.ID, error: errorMessage(err) });
    st = null;
  }
  const from = rec.State.Status;
  if (st) k.inBackend.add(rec.ID);
  if (st && (st.status === 'running' || st.status === 'paused')) {
    k.live.add(rec.ID);
    if (!wasActive) {
      // Crashed after the runtime's start but before the state was saved: adopt it.
      setRunning(rec, st.pid, k.now());
      rec.HasBeenStartedBefore = true;
    }
    rec.State.Pid = st.pid;
    if (st.status === 'paused' && rec.State.Status !== 'paused') setPaused(rec);
    if (st.status === 'running' && rec.State.Status === 'paused') setUnpaused(rec);
    await k.persistQuietly(rec);
    if (from !== rec.State.Status) await k.stateChange(rec, from, rec.State.Status, 'restore');
  } else if (wasActive) {
    // Exited while we were down (real exit code), or gone without an exit status (dockerd: 255).
    const exit = st?.exit;
    k.live.add(rec.ID); // its mounts/networking were set up: release them
    setStopped(rec, {
      exitCode: exit ? exit.exitCode : EXIT_CODE_UNKNOWN,
      oomKilled: exit?.oomKilled ?? false,
      finishedAt: normaliseTime(exit?.exitedAt, k.now()),
      ...(exit ? {} : { error: 'container was not found by its runtime backend after a restart' }),
    });
    k.emit(rec, 'die', { exitCode: String(rec.State.ExitCode) });
    await k.stateChange(rec, from, 'exited', 'restore');
    await d.exits.cleanup(rec, 'restore');
    await k.persistQuietly(rec);
  } else if (st) {
    // Created or stopped leftovers of a start that never completed, or of an exit whose
    // cleanup a crash cut short: unmount and remove them from the backend.
    await k.release(rec, 'restore');
    await backend.delete(rec.ID, { force: true }).then(
      () => k.inBackend.delete(rec.ID),
      (err: unknown) => logger.error('runtime delete at restore failed', { container: rec.ID, error: errorMessage(err) }),
    );
  }
  await afterLiveRestore(st);
}
