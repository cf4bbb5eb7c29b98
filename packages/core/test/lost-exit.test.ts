/**
 * A lost exit: the backend no longer has the container and reported no exit. dockerd reports
 * such an exit as 255 (its restore of a task gone without an exit status); berth uses the one
 * constant EXIT_CODE_UNKNOWN for it wherever it meets one — a stop, a kill, a restore.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTestEngine, type TestEngine } from '../../testing/src/index.js';
import { EXIT_CODE_UNKNOWN } from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

describe('an exit the backend lost is reported as EXIT_CODE_UNKNOWN (255, as dockerd)', () => {
  it('is 255', () => {
    expect(EXIT_CODE_UNKNOWN).toBe(255);
  });

  for (const how of ['kill', 'stop', 'rm -f'] as const) {
    it(`${how} of a container its backend forgot: exited with 255, die event says 255`, async () => {
      t = await createTestEngine({ specDefaults: false });
      const id = await t.createContainer();
      await t.engine.containers.start(id);
      const dies: string[] = [];
      t.engine.events.subscribe((e) => {
        if (e.Action === 'die') dies.push(e.Actor.Attributes.exitCode!);
      });
      t.fake.forget(id);
      if (how === 'kill') await t.engine.containers.kill(id);
      else if (how === 'stop') await t.engine.containers.stop(id, { timeout: 1 });
      else await t.engine.containers.remove(id, { force: true });
      expect(dies).toEqual([String(EXIT_CODE_UNKNOWN)]);
      if (how !== 'rm -f') expect(t.engine.containers.get(id).State).toMatchObject({ Status: 'exited', ExitCode: EXIT_CODE_UNKNOWN, Running: false });
    });
  }
});
