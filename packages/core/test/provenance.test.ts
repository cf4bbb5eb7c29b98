import { afterEach, describe, expect, it, vi } from 'vitest';
import { createTestEngine, type TestEngine } from '../../testing/src/index.js';
import { CORE_DEFAULTS_PLUGIN, ProvenanceRecorder, Stage, cloneJson, deepFreeze, definePlugin, snapshotJson, type OciSpec } from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('a test plugin tapping all five main hooks, on top of the real spec builder', () => {
  it('changes the spec; provenance shows exactly the paths it changed, and the timing of every tap', async () => {
    const expected: string[] = [];
    const states: string[] = [];
    const plugin = definePlugin({
      name: 'prov',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.beforeMount.tapPromise('prov', async () => sleep(30));
        hooks.networking.tapPromise('prov', async (ctx) => {
          ctx.hostsPath = undefined;
        });
        hooks.specBuild.tapPromise({ name: 'prov', stage: Stage.SECURITY }, async (spec: OciSpec) => {
          const envLen = spec.process!.env!.length;
          const hadSysctl = !!spec.linux!.sysctl;
          expected.push('hostname', `process.env[${envLen}]`, hadSysctl ? 'linux.sysctl.net.ipv4.ping_group_range' : 'linux.sysctl');
          spec.hostname = 'prov-host';
          spec.process!.env!.push('PROV=1');
          spec.linux!.sysctl = { ...(spec.linux!.sysctl ?? {}), 'net.ipv4.ping_group_range': '0 0' };
          return spec;
        });
        hooks.runtimeCreate.tapPromise('prov', async (opts) => {
          await sleep(10);
          opts.labels = { ...opts.labels, prov: 'yes' };
          return undefined;
        });
        hooks.onStateChange.tapPromise('prov', async (c) => void states.push(`${c.from}->${c.to}`));
      },
    });
    t = await createTestEngine({ plugins: [plugin] });
    const id = await t.createContainer({ name: 'prov', Config: { Cmd: ['/bin/sh', '-c', 'true'], Env: ['A=1'] } });
    await t.engine.containers.start(id);

    // The spec the backend got carries the changes on top of the builder's defaults.
    const spec = t.fake.containers.get(id)!.spec;
    expect(spec.hostname).toBe('prov-host');
    expect(spec.process!.env).toContain('PROV=1');
    expect(spec.process!.env).toContain('A=1');
    expect(spec.process!.args).toEqual(['/bin/sh', '-c', 'true']);
    expect(spec.root!.path).toBe(t.rootfs);
    expect(spec.linux!.sysctl!['net.ipv4.ping_group_range']).toBe('0 0');
    expect(states).toEqual(['null->created', 'created->running']);

    const prov = await t.engine.explain('prov');
    expect(prov.containerId).toBe(id);
    const specTaps = prov.taps.filter((x) => x.hook === 'specBuild');
    expect(specTaps.map((x) => x.plugin)).toEqual([CORE_DEFAULTS_PLUGIN, 'prov']);
    expect(specTaps[1]!.changedPaths!.sort()).toEqual(expected.sort());
    expect(specTaps[1]!.stage).toBe(Stage.SECURITY);
    // core:defaults built the spec from { ociVersion } up: it wrote process, root, mounts, linux…
    expect(specTaps[0]!.changedPaths).toEqual(expect.arrayContaining(['process', 'root', 'mounts', 'linux', 'hostname']));
    // Timing of every tap of every hook, in call order.
    expect(prov.taps.filter((x) => x.plugin === 'prov').map((x) => x.hook)).toEqual(['beforeMount', 'networking', 'specBuild', 'runtimeCreate', 'onStateChange']);
    // The backend's own steps are timed too.
    expect(prov.taps.filter((x) => x.plugin === 'fake').map((x) => x.hook)).toEqual(['runtime.create', 'runtime.start']);
    const mount = prov.taps.find((x) => x.hook === 'beforeMount')!;
    expect(mount.durationMs).toBeGreaterThanOrEqual(25);
    expect(prov.taps.find((x) => x.hook === 'runtimeCreate')!.durationMs).toBeGreaterThanOrEqual(8);
    for (const x of prov.taps) {
      expect(x.durationMs).toBeGreaterThanOrEqual(0);
      expect(x.startedAt).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    }
    // Who set what: hostname by the defaults, then by prov (last writer last).
    expect(prov.spec.find((o) => o.path === 'hostname')!.plugins).toEqual([CORE_DEFAULTS_PLUGIN, 'prov']);
    expect(prov.conflicts).toEqual([]);
    expect((t.fake.callsOf('create', id)[0]!.args[0] as { labels: Record<string, string> }).labels.prov).toBe('yes');
  });

  it('reports conflicts when two plugins write the same field; a new start resets the record', async () => {
    const writer = (name: string, stage: number, value: string) =>
      definePlugin({
        name,
        type: 'io.berth.test.v1',
        apply(hooks) {
          hooks.specBuild.tapPromise({ name, stage }, async (spec) => ({ ...spec, hostname: value }));
        },
      });
    t = await createTestEngine({ plugins: [writer('one', Stage.NORMAL, 'h1'), writer('two', Stage.FINAL, 'h2')] });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    expect(t.fake.containers.get(id)!.spec.hostname).toBe('h2');
    expect((await t.engine.explain(id)).conflicts).toEqual([{ path: 'hostname', plugins: [CORE_DEFAULTS_PLUGIN, 'one', 'two'] }]);
    const before = (await t.engine.explain(id)).taps.length;
    await t.engine.containers.stop(id, { timeout: 1 });
    await t.engine.containers.start(id);
    const p = await t.engine.explain(id);
    expect(p.taps.filter((x) => x.hook === 'specBuild')).toHaveLength(3);
    expect(p.taps.length).toBeLessThanOrEqual(before + 1);
  });

  it('the real spec builder joins the namespaces of container:<id> modes', async () => {
    t = await createTestEngine();
    const a = await t.createContainer({ name: 'first' });
    await t.engine.containers.start(a);
    const pid = t.engine.containers.get(a).State.Pid;
    const b = await t.createContainer({ HostConfig: { NetworkMode: 'container:first', PidMode: 'container:first', UTSMode: 'container:first' } });
    await t.engine.containers.start(b);
    const ns = t.fake.containers.get(b)!.spec.linux!.namespaces!;
    expect(ns).toEqual(expect.arrayContaining([
      { type: 'network', path: `/proc/${pid}/ns/net` },
      { type: 'uts', path: `/proc/${pid}/ns/uts` },
      { type: 'pid', path: `/proc/${pid}/ns/pid` },
    ]));
    await t.engine.containers.stop(a, { timeout: 1 });
    const c = await t.createContainer({ HostConfig: { NetworkMode: 'container:first' } });
    await expect(t.engine.containers.start(c)).rejects.toThrow(`cannot join network of a non running container: ${a}`);
  });
});

describe('ProvenanceRecorder.flush: the explain record written after the answer', () => {
  it('writes in order per container (the newest lands last) and written() waits for every write in flight', async () => {
    const landed: string[] = [];
    const gates: Array<() => void> = [];
    const rec = new ProvenanceRecorder(async (id, r) => {
      const at = r.startedAt!;
      await new Promise<void>((res) => gates.push(res));
      landed.push(`${id}@${at}`);
    });
    rec.reset('c1', 'first');
    void rec.flush('c1');
    rec.reset('c1', 'second');
    void rec.flush('c1');
    let done = false;
    const all = rec.written('c1').then(() => void (done = true));
    await sleep(5);
    // Only the first write has begun; the second waits for it.
    expect(gates).toHaveLength(1);
    gates[0]!();
    await vi.waitFor(() => expect(gates).toHaveLength(2));
    expect(done).toBe(false);
    gates[1]!();
    await all;
    expect(landed).toEqual(['c1@first', 'c1@second']);
    await rec.written('other');
  });

  it('a failing write never throws, and written() still settles', async () => {
    const rec = new ProvenanceRecorder(async () => {
      throw new Error('ENOSPC');
    });
    rec.reset('c1', 't');
    await expect(rec.flush('c1')).resolves.toBeUndefined();
    await expect(rec.written('c1')).resolves.toBeUndefined();
  });
});

describe('snapshotJson: the interceptor copy of a spec before each waterfall tap', () => {
  it('gives what cloneJson gives, but shares what deepFreeze made immutable', () => {
    const frozen = deepFreeze({ syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }] });
    const v = { a: 1, b: undefined, c: [1, undefined, Number.NaN], d: { seccomp: frozen, when: new Date(0) }, f: () => 1 };
    const s = snapshotJson(v);
    expect(s).toEqual(cloneJson(v));
    expect(s.d.seccomp).toBe(frozen);
    expect(s.d).not.toBe(v.d);
    expect(s.c).not.toBe(v.c);
    expect(Object.isFrozen(frozen.syscalls[0]!.names)).toBe(true);
    expect(() => (frozen.syscalls[0]!.names as string[]).push('write')).toThrow(TypeError);
  });

  it('specBuild taps after one that sets a frozen subtree: their copies share it, and a tap replacing it is still seen', async () => {
    const profile = deepFreeze({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }] });
    let seenBefore: unknown;
    const plugin = definePlugin({
      name: 'frozen',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.specBuild.tapPromise({ name: 'set', stage: Stage.SECURITY }, async (spec: OciSpec) => ({ ...spec, linux: { ...spec.linux, seccomp: profile } }) as OciSpec);
        hooks.specBuild.tapPromise({ name: 'look', stage: Stage.SECURITY + 1 }, async (spec: OciSpec) => {
          seenBefore = spec.linux?.seccomp;
          return spec;
        });
        hooks.specBuild.tapPromise({ name: 'replace', stage: Stage.SECURITY + 2 }, async (spec: OciSpec) => ({ ...spec, linux: { ...spec.linux, seccomp: { ...profile, defaultAction: 'SCMP_ACT_KILL' } } }) as OciSpec);
      },
    });
    t = await createTestEngine({ plugins: [plugin] });
    const id = await t.createContainer({ Config: { Cmd: ['x'] } });
    await t.engine.containers.start(id);
    expect(seenBefore).toBe(profile);
    const e = await t.engine.explain(id);
    const paths = (tap: string) => e.taps.find((x) => x.tap === tap)?.changedPaths;
    expect(paths('set')).toEqual(['linux.seccomp']);
    expect(paths('look')).toEqual([]);
    expect(paths('replace')).toEqual(['linux.seccomp.defaultAction']);
  });
});
