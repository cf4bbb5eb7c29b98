/**
 * Where a create makes its record directory (issue 18): with its first save — one thread-pool
 * job with the files where the native addon is loaded — and, only when the
 * `create.beforeRecordSave` failpoint is armed, first on its own, so that the point still sits
 * where docs/reliability.md says (the directory exists, config.v2.json not written).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createTestEngine, type TestEngine } from '../../testing/src/index.js';
import { FileStateStore, setFailpointsForTest } from '../src/index.js';

let t: TestEngine;
beforeEach(async () => {
  t = await createTestEngine();
});
afterEach(async () => {
  setFailpointsForTest(undefined);
  vi.restoreAllMocks();
  await t.dispose();
});

describe("a create's record directory", () => {
  it('is made by the first save, not by a makeDir of its own', async () => {
    const makeDir = vi.spyOn(FileStateStore.prototype, 'makeDir');
    const id = await t.createContainer({ name: 'c1' });
    expect(makeDir).not.toHaveBeenCalled();
    expect(existsSync(join(t.dataRoot, 'containers', id, 'config.v2.json'))).toBe(true);
  });

  it('with create.beforeRecordSave armed: made before the point fires, and removed when the create fails there', async () => {
    setFailpointsForTest('create.beforeRecordSave=error');
    const made: boolean[] = [];
    const original = FileStateStore.prototype.makeDir;
    vi.spyOn(FileStateStore.prototype, 'makeDir').mockImplementation(async function (this: FileStateStore, id: string) {
      await original.call(this, id);
      made.push(existsSync(this.dir(id)));
    });
    await expect(t.createContainer({ name: 'c1' })).rejects.toThrow('failpoint create.beforeRecordSave');
    expect(made).toEqual([true]);
    expect(t.engine.containers.list()).toEqual([]);
    expect(readdirSync(join(t.dataRoot, 'containers'))).toEqual([]);
  });
});
