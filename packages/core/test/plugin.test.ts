import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { injectable, inject, type DependencyContainer, type InjectionToken } from 'tsyringe';
import { createTestEngine, type TestEngine } from '../../testing/src/index.js';
import {
  Engine,
  IClock,
  IEngineConfig,
  IEventBus,
  ILogger,
  IRuntime,
  IStateStore,
  NotFoundError,
  PluginError,
  PluginGraphError,
  SkipPluginError,
  definePlugin,
  errorKind,
  sortPlugins,
  type Clock,
  type ContainerRecord,
  type EngineConfig,
  type Plugin,
  type PluginContext,
} from '../src/index.js';

/** A token of a plugin's own (as a third-party network plugin would define one), for the DI tests. */
interface NetworkDriver {
  readonly name: string;
  list(): Promise<unknown[]>;
  inspect(idOrName: string): Promise<unknown>;
}
const INetworkDriver: InjectionToken<NetworkDriver> = Symbol('INetworkDriver');

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

const p = (name: string, requires: string[] = [], type = 'io.berth.test.v1'): Plugin => definePlugin({ name, type, requires });

describe('definePlugin', () => {
  it('checks the definition and freezes it', () => {
    const x = definePlugin({ name: 'seccomp', type: 'io.berth.security.v1', requires: ['core'] });
    expect(Object.isFrozen(x)).toBe(true);
    expect(x.requires).toEqual(['core']);
    expect(() => definePlugin({ name: '', type: 'io.berth.x.v1' })).toThrow(PluginGraphError);
    expect(() => definePlugin({ name: 'x', type: 'security' })).toThrow("plugin x: invalid type \"security\" (want e.g. 'io.berth.security.v1')");
    expect(() => definePlugin({ name: 'x', type: 'io.berth.security' })).toThrow(/invalid type/);
    expect(() => definePlugin({ name: 'x', type: 'io.berth.x.v1', requires: [''] })).toThrow(/requires must be/);
    // one way to name a plugin: `name` (no `id` alias)
    expect(() => definePlugin({ id: 'overlay', type: 'io.berth.snapshotter.v1' } as never)).toThrow(PluginGraphError);
    expect(Object.keys(x)).not.toContain('id');
  });
});

describe('load order', () => {
  it('follows requirements (by name or by type), otherwise the given order', () => {
    const order = sortPlugins([
      p('apparmor', ['io.berth.runtime.v1']),
      p('cni', ['netns']),
      p('runc', [], 'io.berth.runtime.v1'),
      p('netns'),
      p('metrics'),
    ]).map((x) => x.name);
    expect(order).toEqual(['runc', 'apparmor', 'netns', 'cni', 'metrics']);
  });

  it('a duplicate name, a missing requirement or a cycle is an error that names the plugins', () => {
    const dup = (() => { try { sortPlugins([p('a1'), p('a1')]); } catch (e) { return e; } })() as PluginGraphError;
    expect(dup).toBeInstanceOf(PluginGraphError);
    expect(dup.message).toBe('duplicate plugin name: a1');
    expect(dup.plugins).toEqual(['a1']);
    const missing = (() => { try { sortPlugins([p('cni', ['netns'])]); } catch (e) { return e; } })() as PluginGraphError;
    expect(missing.message).toBe('plugin cni requires netns, which is not loaded');
    expect(missing.plugins).toEqual(['cni', 'netns']);
    const cycle = (() => { try { sortPlugins([p('x1', ['y1']), p('y1', ['z1']), p('z1', ['x1'])]); } catch (e) { return e; } })() as PluginGraphError;
    expect(cycle.message).toBe('plugin dependency cycle: x1 -> y1 -> z1 -> x1');
    expect(cycle.plugins).toEqual(['x1', 'y1', 'z1']);
    expect(errorKind(cycle)).toBe('InvalidParameter');
  });

  it('the engine refuses to start with a bad graph, and names the plugin whose init failed', async () => {
    await expect(createTestEngine({ specDefaults: false, plugins: [p('cni', ['netns'])] })).rejects.toThrow('plugin cni requires netns, which is not loaded');
    const closed: string[] = [];
    const ok = definePlugin({ name: 'first', type: 'io.berth.test.v1', close: () => void closed.push('first') });
    const bad = definePlugin({
      name: 'broken',
      type: 'io.berth.test.v1',
      requires: ['first'],
      register() {
        throw new Error('cannot open /dev/thing');
      },
    });
    const err = await createTestEngine({ specDefaults: false, plugins: [bad, ok] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PluginError);
    expect(err).toMatchObject({ plugin: 'broken', hook: 'register' });
    expect((err as Error).message).toContain('cannot open /dev/thing');
    expect(closed).toEqual(['first']);
  });
});

describe('plugins and dependency injection', () => {
  it('providers registered by a plugin reach the engine; constructors use @inject on every parameter', async () => {
    // What `@injectable()` and `@inject(TOKEN)` on every constructor parameter compile to
    // (vitest's transform does not lower parameter decorators in test files).
    class BridgeDriver implements NetworkDriver {
      readonly name = 'bridge';
      constructor(
        readonly config: EngineConfig,
        readonly clock: Clock,
      ) {}
      async list() {
        return [{ Name: 'bridge', Id: 'b', Driver: 'bridge', Scope: 'local' as const }];
      }
      async inspect() {
        return null;
      }
    }
    inject(IEngineConfig)(BridgeDriver, undefined, 0);
    inject(IClock)(BridgeDriver, undefined, 1);
    injectable()(BridgeDriver);
    const net = definePlugin({
      name: 'bridge',
      type: 'io.berth.network.v1',
      register(c) {
        c.register(INetworkDriver, { useClass: BridgeDriver });
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [net] });
    const d = t.engine.container.resolve(INetworkDriver) as BridgeDriver;
    expect(d.config.dataRoot).toBe(t.dataRoot);
    expect(await d.list()).toHaveLength(1);
    for (const tok of [IRuntime, IStateStore, ILogger, IClock, IEventBus, IEngineConfig] as symbol[]) expect(t.engine.container.isRegistered(tok)).toBe(true);
    expect(t.engine.container.resolve(IEventBus)).toBe(t.engine.events);
  });

  it('a plugin that declares `provides` is encapsulated: only those tokens reach the engine', async () => {
    const PRIVATE = Symbol('private-helper');
    const net = definePlugin({
      name: 'encapsulated',
      type: 'io.berth.network.v1',
      provides: [INetworkDriver],
      register(c) {
        c.register(PRIVATE, { useValue: 'only mine' });
        c.register(INetworkDriver, { useFactory: (dc) => ({ name: dc.resolve<string>(PRIVATE), list: async () => [], inspect: async () => null }) });
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [net] });
    expect(t.engine.container.resolve<NetworkDriver>(INetworkDriver).name).toBe('only mine');
    expect(t.engine.container.isRegistered(PRIVATE, true)).toBe(false);
    const liar = definePlugin({ name: 'liar', type: 'io.berth.network.v1', provides: [INetworkDriver], register() {} });
    await expect(createTestEngine({ specDefaults: false, plugins: [liar] })).rejects.toThrow(/liar says it provides Symbol\(INetworkDriver\)/);
  });

  it('plugin config: defaults merged with the build\'s config, validated', async () => {
    let seen: unknown;
    const cfg = definePlugin<{ profile: string; strict: boolean }>({
      name: 'seccomp',
      type: 'io.berth.security.v1',
      config: { profile: 'default', strict: false },
      validateConfig(c) {
        if (!['default', 'unconfined'].includes(c.profile)) throw new Error(`unknown profile ${c.profile}`);
      },
      apply(_h, ctx) {
        seen = ctx.config;
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [cfg], pluginConfig: { seccomp: { strict: true } } });
    expect(seen).toEqual({ profile: 'default', strict: true });
    await expect(createTestEngine({ specDefaults: false, plugins: [cfg], pluginConfig: { seccomp: { profile: 'weird' } } })).rejects.toMatchObject({
      plugin: 'seccomp',
      hook: 'validateConfig',
    });
  });

  it('a plugin sees the runtime backend\'s features and can skip itself early', async () => {
    const criu = definePlugin({
      name: 'criu',
      type: 'io.berth.checkpoint.v1',
      apply(_hooks, ctx) {
        if (!ctx.runtime()?.features().checkpoint) throw new SkipPluginError(`runtime ${ctx.runtime()?.name} cannot checkpoint`);
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [criu] });
    expect(t.engine.plugins.find((x) => x.name === 'criu')).toMatchObject({ status: 'skipped', reason: 'runtime fake cannot checkpoint' });
  });

  it('SkipPluginError lists the plugin as skipped; the others load', async () => {
    const skip = definePlugin({
      name: 'criu',
      type: 'io.berth.checkpoint.v1',
      register() {
        throw new SkipPluginError('criu binary not found');
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [skip, p('other')] });
    expect(t.engine.plugins.filter((x) => x.name === 'criu' || x.name === 'other')).toMatchObject([
      { name: 'criu', type: 'io.berth.checkpoint.v1', status: 'skipped', reason: 'criu binary not found' },
      { name: 'other', type: 'io.berth.test.v1', status: 'loaded' },
    ]);
    expect(t.logger.entries.some((e) => e.msg === 'skip loading plugin' && e.fields.plugin === 'criu')).toBe(true);
  });

  it('security options: announced by loaded plugins only, for /info', async () => {
    const mk = (name: string, option: string, skip: boolean) =>
      definePlugin({
        name,
        type: 'io.berth.security.v1',
        apply(_hooks, ctx) {
          ctx.addSecurityOption(option);
          if (skip) throw new SkipPluginError('host has no such thing');
        },
      });
    t = await createTestEngine({ specDefaults: false, plugins: [mk('seccomp', 'name=seccomp,profile=builtin', false), mk('apparmor', 'name=apparmor', true)] });
    expect(t.engine.securityOptions()).toEqual(['name=seccomp,profile=builtin']);
    const bad = definePlugin({ name: 'bad', type: 'io.berth.security.v1', apply: (_h, ctx) => ctx.addSecurityOption('seccomp') });
    await expect(createTestEngine({ specDefaults: false, plugins: [bad] })).rejects.toThrow(/security option must look like name=/);
  });

  it('close runs in reverse load order; the engine stops listening to the runtime, containers keep running', async () => {
    const closed: string[] = [];
    const mk = (name: string, requires: string[] = []) => definePlugin({ name, type: 'io.berth.test.v1', requires, close: () => void closed.push(name) });
    t = await createTestEngine({ specDefaults: false, plugins: [mk('b2', ['a2']), mk('a2')] });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    await t.engine.close();
    expect(closed).toEqual(['b2', 'a2']);
    expect(t.fake.listenerCount()).toBe(0);
    expect(t.fake.containers.get(id)!.status).toBe('running');
  });

  it('an engine without any runtime backend does not start, and closes the plugins it loaded', async () => {
    const closed: string[] = [];
    const p1 = definePlugin({ name: 'opened', type: 'io.berth.test.v1', close: () => void closed.push('opened') });
    const dir = await mkdtemp(join(tmpdir(), 'berth-none-'));
    try {
      await expect(Engine.create({ dataRoot: join(dir, 'd'), execRoot: join(dir, 'e'), plugins: [p1] })).rejects.toThrow(/no runtime backend/);
      expect(closed).toEqual(['opened']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('plugin lifecycle', () => {
  const TOKEN = Symbol('thing');

  it('close gets the context register and apply got: per-engine state lives with it, not in the module', async () => {
    const seen: { phase: string; ctx: PluginContext<unknown> }[] = [];
    // One plugin value, two engines: the state of each engine hangs off its own context.
    const open = new WeakMap<object, string[]>();
    const plugin = definePlugin({
      name: 'stateful',
      type: 'io.berth.test.v1',
      register(_c, ctx) {
        seen.push({ phase: 'register', ctx });
        open.set(ctx, ['handle']);
      },
      apply(_h, ctx) {
        seen.push({ phase: 'apply', ctx });
      },
      close(ctx) {
        seen.push({ phase: 'close', ctx });
        open.get(ctx)!.length = 0;
      },
    });
    const t1 = await createTestEngine({ specDefaults: false, plugins: [plugin] });
    const t2 = await createTestEngine({ specDefaults: false, plugins: [plugin] });
    try {
      await t1.engine.close();
      const [r1, a1, r2, , c1] = seen;
      expect(seen.map((s) => s.phase)).toEqual(['register', 'apply', 'register', 'apply', 'close']);
      expect(a1!.ctx).toBe(r1!.ctx);
      expect(c1!.ctx).toBe(r1!.ctx);
      expect(r2!.ctx).not.toBe(r1!.ctx);
      expect(open.get(r1!.ctx)).toEqual([]);
      expect(open.get(r2!.ctx)).toEqual(['handle']);
    } finally {
      await t1.dispose();
      await t2.dispose();
    }
  });

  it('a close that fails is logged with the plugin\'s name; the plugins before it still close', async () => {
    const closed: string[] = [];
    const first = definePlugin({ name: 'first', type: 'io.berth.test.v1', close: () => void closed.push('first') });
    const broken = definePlugin({
      name: 'broken-close',
      type: 'io.berth.test.v1',
      close() {
        throw new Error('socket already gone');
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [first, broken] });
    await t.engine.close();
    expect(closed).toEqual(['first']);
    expect(t.logger.entries.filter((e) => e.msg === 'plugin close failed').map((e) => [e.fields.plugin, e.fields.error])).toEqual([['broken-close', 'socket already gone']]);
  });

  it('a plugin that skips itself in register or apply leaves no DI registration behind', async () => {
    const mk = (name: string, where: 'register' | 'apply') =>
      definePlugin({
        name,
        type: 'io.berth.test.v1',
        register(container) {
          container.register(TOKEN, { useValue: name });
          if (where === 'register') throw new SkipPluginError('not on this host');
        },
        apply() {
          throw new SkipPluginError('not on this host');
        },
      });
    t = await createTestEngine({ specDefaults: false, plugins: [mk('in-register', 'register')] });
    expect(t.engine.container.isRegistered(TOKEN, true)).toBe(false);
    await t.dispose();
    t = await createTestEngine({ specDefaults: false, plugins: [mk('in-apply', 'apply')] });
    expect(t.engine.container.isRegistered(TOKEN, true)).toBe(false);
    await t.dispose();
    // the same registration from a plugin that loads reaches the engine
    t = await createTestEngine({
      specDefaults: false,
      plugins: [definePlugin({ name: 'loads', type: 'io.berth.test.v1', register: (container) => void container.register(TOKEN, { useValue: 'loads' }) })],
    });
    expect(t.engine.container.resolve(TOKEN)).toBe('loads');
  });

  it('a failed load disposes the engine\'s DI container and closes what loaded', async () => {
    let engineContainer: DependencyContainer | undefined;
    const closed: string[] = [];
    const ok = definePlugin({ name: 'ok', type: 'io.berth.test.v1', close: () => void closed.push('ok') });
    const bad = definePlugin({
      name: 'bad',
      type: 'io.berth.test.v1',
      apply() {
        throw new Error('no such device');
      },
    });
    const err = await createTestEngine({ specDefaults: false, plugins: [ok, bad], providers: (c) => void (engineContainer = c) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ plugin: 'bad', hook: 'apply' });
    expect(closed).toEqual(['ok']);
    expect(engineContainer).toBeDefined();
    // tsyringe refuses every use of a disposed container
    expect(() => engineContainer!.isRegistered(TOKEN)).toThrow();
    // a bad graph too (the container exists before the plugins are sorted)
    engineContainer = undefined;
    await expect(createTestEngine({ specDefaults: false, plugins: [p('x1', ['y1'])], providers: (c) => void (engineContainer = c) })).rejects.toThrow(PluginGraphError);
    expect(() => engineContainer!.isRegistered(TOKEN)).toThrow();
  });
});

describe('the container lookup for plugins (ctx.containers)', () => {
  it('finds containers by ID, ID prefix or name and hands out copies', async () => {
    let lookup: PluginContext<unknown>['containers'] | undefined;
    let early: unknown;
    const plugin = definePlugin({
      name: 'reader',
      type: 'io.berth.test.v1',
      apply(_h, ctx) {
        lookup = ctx.containers;
        early = (() => { try { ctx.containers.list(); } catch (e) { return e; } })();
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [plugin] });
    // before the engine has its containers: a typed refusal, not an empty list
    expect(errorKind(early)).toBe('Unavailable');
    const id = await t.createContainer({ name: 'web' });
    expect(lookup!.get(id).Name).toBe('/web');
    expect(lookup!.get(id.slice(0, 12)).ID).toBe(id);
    expect(lookup!.get('web').ID).toBe(id);
    expect(lookup!.get('/web').ID).toBe(id);
    expect(lookup!.list().map((c) => c.ID)).toEqual([id]);
    expect(() => lookup!.get('nope')).toThrow(NotFoundError);
    // copies: changing one changes nothing in the engine
    const copy = lookup!.get(id) as ContainerRecord;
    copy.Name = '/changed';
    copy.State.Status = 'dead';
    expect(t.engine.containers.get(id).Name).toBe('/web');
    expect(t.engine.containers.get(id).State.Status).toBe('created');
  });

  it('list(keep) filters on the live records and copies only the matches', async () => {
    let lookup: PluginContext<unknown>['containers'] | undefined;
    const plugin = definePlugin({ name: 'reader', type: 'io.berth.test.v1', apply: (_h, ctx) => void (lookup = ctx.containers) });
    t = await createTestEngine({ specDefaults: false, plugins: [plugin] });
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await t.createContainer({ name: `c${i}`, Config: { Labels: { keep: String(i % 10 === 0) } } }));
    const seen: string[] = [];
    const clone = globalThis.structuredClone;
    let copies = 0;
    globalThis.structuredClone = ((v: unknown, o?: Parameters<typeof structuredClone>[1]) => {
      copies++;
      return clone(v, o);
    }) as typeof structuredClone;
    let kept: ReturnType<NonNullable<typeof lookup>['list']>;
    try {
      kept = lookup!.list((c) => {
        seen.push(c.ID);
        return c.Config.Labels?.keep === 'true';
      });
    } finally {
      globalThis.structuredClone = clone;
    }
    expect(kept.map((c) => c.Name).sort()).toEqual(['/c0', '/c10']);
    expect(seen).toHaveLength(20);
    expect(copies).toBeLessThanOrEqual(2);
  });
});
