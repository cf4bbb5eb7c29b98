import { afterEach, describe, expect, it } from 'vitest';
import { createTestEngine, type TestEngine } from '../../testing/src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

describe('engine smoke', () => {
  it('creates, starts, waits, removes', async () => {
    t = await createTestEngine({ specDefaults: false });
    t.fake.script('*', { runFor: 300, exitCode: 3 });
    const id = await t.createContainer({ name: 'smoke' });
    await t.engine.containers.start('smoke');
    expect(t.engine.containers.get(id).State.Status).toBe('running');
    const r = await t.engine.containers.wait(id, 'not-running');
    expect(r.StatusCode).toBe(3);
    expect(t.engine.containers.get(id).State.Status).toBe('exited');
    await t.engine.containers.remove(id);
    expect(() => t!.engine.containers.get(id)).toThrow(/No such container/);
  });
});
