/**
 * After SIGKILL the engine waits for the container's exit; a backend that lost the exit event
 * (the OCI backend whose monitor was killed, issue 10 item 4) must not keep `stop` and
 * `rm -f` waiting for the 30 s limit: the engine asks the backend's state between waits and
 * takes the exit from there. The vitest timeout (10 s) is what a 30 s wait would break.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FakeRuntime, createTestEngine, type TestEngine } from '../../testing/src/index.js';

/** A FakeRuntime whose exits stop reaching the engine once `lose` is set. */
class LosingRuntime extends FakeRuntime {
  lose = false;
  override exit(id: string, exitCode: number, opts: { oomKilled?: boolean; silent?: boolean } = {}): void {
    super.exit(id, exitCode, { ...opts, silent: opts.silent || this.lose });
  }
}

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

describe('the wait after SIGKILL asks the backend', () => {
  for (const how of ['stop -t 1', 'rm -f'] as const) {
    it(`${how} of a container whose exit event is lost returns with the exit the backend knows`, async () => {
      const runtime = new LosingRuntime();
      t = await createTestEngine({ specDefaults: false, runtime });
      runtime.script('*', { ignoreSignals: [15] });
      const id = await t.createContainer({ Config: { Cmd: ['x'] } });
      await t.engine.containers.start(id);
      runtime.lose = true;
      if (how === 'stop -t 1') {
        await t.engine.containers.stop(id, { timeout: 1 });
        const st = t.engine.containers.get(id).State;
        expect(st.Status).toBe('exited');
        expect(st.ExitCode).toBe(137);
      } else {
        await t.engine.containers.remove(id, { force: true });
        expect(() => t!.engine.containers.get(id)).toThrow(/No such container/);
      }
    }, 10_000);
  }
});
