/**
 * One berthd with the test image loaded, shared by the tests of a describe block: started in
 * the block's beforeAll and cleaned up in its afterAll, also when a test failed (stopped, the
 * processes of containers it could not stop killed, its mounts and temp dirs removed, then the
 * test image tarball). Call it inside the describe, so that a skipped block starts nothing:
 *
 *   let d: Berthd;
 *   useBerthdWithTestImage((b) => (d = b));
 *   useBerthdWithTestImage((b) => (d = b), { start: () => ({ args: ['--seccomp-profile', file] }) });
 */
import { afterAll, beforeAll } from 'vitest';
import { removeTestImageTarball, startBerthd, type Berthd, type StartOptions } from './berthd.js';

export interface SharedBerthdOptions {
  /** berthd's start options, asked for when the beforeAll runs (after the block's earlier hooks). */
  start?: () => StartOptions;
  /** Runs before the cleanup (say, `docker rm -f` of the block's containers); its failure is ignored. */
  beforeCleanup?: (d: Berthd) => Promise<unknown>;
}

export function useBerthdWithTestImage(set: (d: Berthd) => void, opts: SharedBerthdOptions = {}): void {
  let d: Berthd | undefined;
  beforeAll(async () => {
    d = await startBerthd(opts.start?.() ?? {});
    set(d);
    await d.loadTestImage();
  }, 120_000);
  afterAll(async () => {
    try {
      if (d && opts.beforeCleanup) await opts.beforeCleanup(d).catch(() => undefined);
      await d?.cleanup();
    } finally {
      removeTestImageTarball();
    }
  }, 120_000);
}
