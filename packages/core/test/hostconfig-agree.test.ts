/**
 * Create and update check a HostConfig with the same module (hostconfig-validate.ts): a
 * restart policy or resource value one of them refuses, the other refuses too, with the same
 * dockerd message (issue 11: update used to accept a MaximumRetryCount that create refused).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTestEngine, type TestEngine } from '../../testing/src/index.js';
import { InvalidParameterError, type HostConfig } from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

const CASES: Array<{ what: string; hc: HostConfig; refused?: string }> = [
  { what: 'always with a retry count', hc: { RestartPolicy: { Name: 'always', MaximumRetryCount: 3 } }, refused: "maximum retry count can only be used with 'on-failure'" },
  { what: 'no with a retry count', hc: { RestartPolicy: { Name: 'no', MaximumRetryCount: 1 } }, refused: "maximum retry count can only be used with 'on-failure'" },
  { what: 'unless-stopped with a negative count', hc: { RestartPolicy: { Name: 'unless-stopped', MaximumRetryCount: -1 } }, refused: 'and cannot be negative' },
  { what: 'on-failure with a negative count', hc: { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: -1 } }, refused: 'maximum retry count cannot be negative' },
  { what: 'an unknown policy', hc: { RestartPolicy: { Name: 'sometimes' as never } }, refused: "unknown policy 'sometimes'" },
  { what: 'a negative memory limit', hc: { Memory: -1 }, refused: '' },
  { what: 'on-failure:5', hc: { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 5 } } },
  { what: 'always', hc: { RestartPolicy: { Name: 'always', MaximumRetryCount: 0 } } },
];

describe('create and update agree on a HostConfig', () => {
  for (const c of CASES) {
    it(`${c.what}: ${c.refused === undefined ? 'accepted' : 'refused'} by both`, async () => {
      t = await createTestEngine({ specDefaults: false });
      const created = await t.engine.containers.create({ Config: { Cmd: ['x'] }, HostConfig: c.hc, rootfs: t.rootfs }).then(() => undefined, (e: unknown) => e);
      const id = await t.createContainer();
      const updated = await t.engine.containers.update(id, c.hc).then(() => undefined, (e: unknown) => e);
      if (c.refused === undefined) {
        expect(created).toBeUndefined();
        expect(updated).toBeUndefined();
        if (c.hc.RestartPolicy) expect(t.engine.containers.get(id).HostConfig.RestartPolicy).toEqual(c.hc.RestartPolicy);
        return;
      }
      expect(created).toBeInstanceOf(InvalidParameterError);
      expect(updated).toBeInstanceOf(InvalidParameterError);
      expect((created as Error).message).toContain(c.refused);
      expect((updated as Error).message).toContain((created as Error).message);
    });
  }
});
