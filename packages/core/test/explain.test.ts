/**
 * engine.explain() and engine.plugins: what `berth explain` / `berth plugins` show — taps in
 * order with skipped selectors, undo steps of a failed start, the record surviving a restart
 * (explain.json beside the container's state), plugin version, redacted config and taps.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestEngine, type TestEngine } from '../../testing/src/index.js';
import { EXPLAIN_FILE, REDACTED, SkipPluginError, Stage, definePlugin, redactConfig } from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

const labelled = definePlugin({
  name: 'gpu',
  type: 'io.berth.test.v1',
  version: '1.2.3',
  config: { devices: ['/dev/nvidia0'], token: 's3cret', registry: { user: 'u', password: 'p' } },
  secretConfigKeys: ['token', 'registry.password'],
  apply(hooks) {
    hooks.specBuild.tapPromise({ name: 'gpu-devices', stage: Stage.RESOURCES, when: (c) => c.Config.Labels?.gpu === 'yes' }, async (spec) => ({ ...spec, hostname: 'gpu' }));
    hooks.beforeStart.tapPromise('gpu-probe', async () => undefined);
  },
});

describe('engine.explain', () => {
  it('lists every tap in order with its duration, marks taps whose selector skipped the container, and names the spec paths each plugin set', async () => {
    t = await createTestEngine({ plugins: [labelled] });
    const withGpu = await t.createContainer({ name: 'with-gpu', Config: { Cmd: ['x'], Labels: { gpu: 'yes' } } });
    const plain = await t.createContainer({ name: 'plain' });
    await t.engine.containers.start(withGpu);
    await t.engine.containers.start(plain);

    const a = await t.engine.explain('with-gpu');
    expect(a).toMatchObject({ containerId: withGpu, name: 'with-gpu', source: 'memory' });
    expect(typeof a.startedAt).toBe('string');
    const hooksInOrder = [...new Set(a.taps.map((x) => x.hook))];
    // The start's hooks in the order the start runs them (the runtime calls are the backend's own records).
    expect(hooksInOrder.indexOf('specBuild')).toBeLessThan(hooksInOrder.indexOf('runtime.create'));
    expect(hooksInOrder.indexOf('runtime.create')).toBeLessThan(hooksInOrder.indexOf('beforeStart'));
    expect(hooksInOrder.indexOf('beforeStart')).toBeLessThan(hooksInOrder.indexOf('runtime.start'));
    const gpu = a.taps.find((x) => x.tap === 'gpu-devices')!;
    expect(gpu).toMatchObject({ hook: 'specBuild', plugin: 'gpu', stage: Stage.RESOURCES, changedPaths: ['hostname'] });
    expect(gpu.skipped).toBeUndefined();
    expect(gpu.durationMs).toBeGreaterThanOrEqual(0);
    expect(a.spec.find((o) => o.path === 'hostname')!.plugins.at(-1)).toBe('gpu');

    const b = await t.engine.explain(plain);
    expect(b.taps.find((x) => x.tap === 'gpu-devices')).toMatchObject({ skipped: true, durationMs: 0 });
    expect(b.spec.find((o) => o.path === 'hostname')?.plugins ?? []).not.toContain('gpu');
    expect(b.taps.find((x) => x.tap === 'gpu-probe')!.skipped).toBeUndefined();
  });

  it('lists the undo steps a failed start ran, newest first, with the step that failed', async () => {
    const order: string[] = [];
    const undoer = definePlugin({
      name: 'undoer',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.specBuild.tapPromise('reserve', async (spec, ctx) => {
          ctx.addUndo(() => void order.push('first'), 'release first');
          ctx.addUndo(() => {
            order.push('second');
            throw new Error('already gone');
          }, 'release second');
          return spec;
        });
        hooks.beforeStart.tapPromise('boom', async () => {
          throw new Error('no device');
        });
      },
    });
    t = await createTestEngine({ plugins: [undoer] });
    const id = await t.createContainer();
    await expect(t.engine.containers.start(id)).rejects.toThrow(/no device/);
    const e = await t.engine.explain(id);
    expect(order).toEqual(['second', 'first']);
    expect(e.undos.map((u) => ({ plugin: u.plugin, hook: u.hook, label: u.label, error: u.error }))).toEqual([
      { plugin: 'undoer', hook: 'specBuild', label: 'release second', error: 'already gone' },
      { plugin: 'undoer', hook: 'specBuild', label: 'release first', error: undefined },
    ]);
    expect(e.taps.find((x) => x.tap === 'boom')).toMatchObject({ hook: 'beforeStart', error: 'no device' });
  });

  it('survives a daemon restart: the record is read back from explain.json; a new start replaces it; remove deletes it', async () => {
    t = await createTestEngine({ plugins: [labelled] });
    const id = await t.createContainer({ Config: { Cmd: ['x'], Labels: { gpu: 'yes' } } });
    await t.engine.containers.start(id);
    const before = await t.engine.explain(id);
    const file = join(t.engine.config.dataRoot, 'containers', id, EXPLAIN_FILE);
    // Written after the start's answer, as background work.
    await t.engine.containers.idle();
    expect(existsSync(file)).toBe(true);

    const engine = await t.restart();
    const after = await engine.explain(id);
    expect(after.source).toBe('file');
    // What the start recorded, then what the new engine recorded since (its restore's taps).
    expect(after.taps.slice(0, before.taps.length)).toEqual(before.taps);
    expect(after.startedAt).toBe(before.startedAt);
    expect(after.spec).toEqual(before.spec);

    await engine.containers.stop(id, { timeout: 1 });
    await engine.containers.start(id);
    const again = await engine.explain(id);
    expect(again.source).toBe('memory');
    expect(again.startedAt).not.toBe(before.startedAt);
    await engine.containers.remove(id, { force: true });
    expect(existsSync(file)).toBe(false);
  });

  it('a container that never started has no start to explain; an unknown one is NotFound', async () => {
    t = await createTestEngine();
    const id = await t.createContainer({ name: 'fresh' });
    const e = await t.engine.explain('fresh');
    expect(e).toMatchObject({ containerId: id, source: 'none', undos: [], spec: [] });
    expect(e.startedAt).toBeUndefined();
    expect(e.taps.filter((x) => x.hook === 'specBuild')).toEqual([]);
    await expect(t.engine.explain('nope')).rejects.toMatchObject({ kind: 'NotFound' });
  });
});

describe('engine.plugins', () => {
  it('gives each plugin its version, its config with secrets redacted, and the hooks it taps', async () => {
    t = await createTestEngine({ plugins: [labelled], pluginConfig: { gpu: { token: 'from-build' } } });
    const gpu = t.engine.plugins.find((p) => p.name === 'gpu')!;
    expect(gpu).toMatchObject({ type: 'io.berth.test.v1', version: '1.2.3', status: 'loaded' });
    expect(gpu.config).toEqual({ devices: ['/dev/nvidia0'], token: REDACTED, registry: { user: 'u', password: REDACTED } });
    expect(JSON.stringify(t.engine.plugins)).not.toContain('from-build');
    expect(gpu.hooks).toEqual([
      { hook: 'specBuild', tap: 'gpu-devices', stage: Stage.RESOURCES },
      { hook: 'beforeStart', tap: 'gpu-probe', stage: 0 },
    ]);
  });

  it('a skipped plugin taps nothing', async () => {
    const skipper = definePlugin({
      name: 'skipper',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.beforeStart.tapPromise('never', async () => undefined);
        throw new SkipPluginError('not on this host');
      },
    });
    t = await createTestEngine({ plugins: [skipper] });
    const s = t.engine.plugins.find((p) => p.name === 'skipper');
    expect(s?.hooks ?? ['missing']).toEqual([]);
  });
});

describe('redactConfig', () => {
  it('keeps JSON data, drops functions, redacts the given paths (also inside arrays)', () => {
    const cyc: Record<string, unknown> = { a: 1 };
    cyc.self = cyc;
    expect(redactConfig({ fn: () => 1, n: 10n, list: [{ key: 'k' }], cyc }, ['list.0.key'])).toEqual({ n: '10', list: [{ key: REDACTED }], cyc: { a: 1, self: '[circular]' } });
  });
});
