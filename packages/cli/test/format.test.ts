/**
 * `berth explain`'s tree for a failed start (the failed tap with its error, the undo steps
 * that ran, newest first, one with its error) and for two plugins writing one spec path (the
 * conflict, last writer last), from what a real engine recorded (FakeRuntime, no root);
 * `berth plugins`' table cuts long cells unless asked not to.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Stage, definePlugin, type PluginInfo } from '@berth/core';
import { createTestEngine, type TestEngine } from '@berth/testing';
import { explainTree, pluginTable } from '../src/format.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

describe('explainTree', () => {
  it('a failed start: the failing tap, then the undo steps that ran', async () => {
    const gpu = definePlugin({
      name: 'gpu',
      type: 'io.example.device.v1',
      apply(hooks) {
        hooks.specBuild.tapPromise('reserve', async (spec, ctx) => {
          ctx.addUndo(() => undefined, 'free device 0');
          ctx.addUndo(() => {
            throw new Error('device busy');
          }, 'free device 1');
          return spec;
        });
        hooks.beforeStart.tapPromise('attach', async () => {
          throw new Error('no such device');
        });
      },
    });
    t = await createTestEngine({ plugins: [gpu] });
    const id = await t.createContainer({ name: 'failing' });
    await expect(t.engine.containers.start(id)).rejects.toThrow('no such device');
    const text = explainTree(await t.engine.explain(id));
    expect(text).toMatch(/└─ beforeStart\n {3}└─ gpu \(attach\) {2}stage 0 {2}\S+ ms {2}FAILED: no such device\nundo steps run/);
    const undo = text.slice(text.indexOf('undo steps run (the start failed):\n')).split('\n').slice(1, 3);
    expect(undo[0]).toMatch(/^ {2}gpu \(specBuild: free device 1\) {2}\S+ ms {2}FAILED: device busy$/);
    expect(undo[1]).toMatch(/^ {2}gpu \(specBuild: free device 0\) {2}\S+ ms$/);
  });

  it('two plugins writing one spec path: the conflict, in the order they wrote', async () => {
    const writer = (name: string, stage: number) =>
      definePlugin({ name, type: 'io.example.test.v1', apply: (hooks) => hooks.specBuild.tapPromise({ name, stage }, async (spec) => ({ ...spec, hostname: name })) });
    t = await createTestEngine({ plugins: [writer('late', Stage.FINAL), writer('early', Stage.NORMAL)] });
    const id = await t.createContainer({ name: 'contested' });
    await t.engine.containers.start(id);
    const text = explainTree(await t.engine.explain(id));
    expect(text).toContain('spec paths set by more than one plugin (the last one wins):\n  hostname: core:defaults → early → late\n');
    expect(text).not.toContain('undo steps');
  });

  it('a container that never started says so', async () => {
    t = await createTestEngine();
    await t.createContainer({ name: 'fresh' });
    expect(explainTree(await t.engine.explain('fresh')).split('\n')[1]).toBe('never started');
  });
});

describe('pluginTable', () => {
  it('cuts cells longer than 40 characters unless --no-trunc', () => {
    const p: PluginInfo = { name: 'x', type: 'io.example.x.v1', status: 'skipped', reason: 'the host has no device of the kind this plugin needs', config: {}, hooks: [] };
    const cut = pluginTable([p]).split('\n')[1]!;
    const full = `skipped: ${p.reason}`;
    expect(cut).toContain(`${full.slice(0, 39)}…`);
    expect(cut).not.toContain(full);
    expect(pluginTable([p], { trunc: false })).toContain(`skipped: ${p.reason}`);
  });
});
