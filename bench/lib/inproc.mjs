// Per-hook time breakdown of a start, read in-process: a second berthd (startBerthd from the
// built dist, same built-ins as the berthd under test) on its own socket and roots. The
// core's interceptors record every tap's duration per container (engine.explain); the
// bench adds one marker tap at the very first and the very last stage of each start hook so
// that the time between hooks (backend create/start, state saves) is visible too.
import { createRequire } from 'node:module';
import path from 'node:path';
import { ApiClient } from './http.mjs';
import { median, ms, now, quantile } from './stats.mjs';

const START_HOOKS = ['beforeMount', 'networking', 'specBuild', 'runtimeCreate', 'beforeStart'];
const MARK = 'bench:mark';

export class InProcessBerth {
  constructor({ repo, dir, rootfsDir, image, log }) {
    Object.assign(this, { repo, dir, rootfsDir, image, log });
    this.sock = path.join(dir, 'b.sock');
    this.execRoot = path.join(dir, 'exec');
    this.marks = [];
  }

  async start() {
    createRequire(path.join(this.repo, 'packages/core/package.json'))('reflect-metadata');
    const { parseBerthdArgs, startBerthd } = await import(path.join(this.repo, 'packages/daemon/dist/index.js'));
    const { config } = parseBerthdArgs(
      ['--host', `unix://${this.sock}`, '--data-root', path.join(this.dir, 'data'), '--exec-root', this.execRoot, '--pidfile', path.join(this.dir, 'b.pid'), '--berth-rootfs-dir', this.rootfsDir, '--log-level', 'error'],
      () => null,
    );
    const log = this.log;
    const silent = { debug() {}, info() {}, warn() {}, error: (m, f) => log(`in-process berthd: ${m} ${f ? JSON.stringify(f) : ''}`), child() { return this; } };
    this.daemon = await startBerthd(config, { handleSignals: false, logger: silent });
    this.api = new ApiClient(this.sock, '1.41');
    const engine = this.daemon.engine;
    // The OCI backend's own step timings (prepare, monitorCreate, start, exitNotify, delete):
    // berthd has no setting for the backend's `timings` observer, so this daemon's gets a TimingLog.
    const { TimingLog } = await import(path.join(this.repo, 'packages/runtime-oci/dist/index.js'));
    const { IRuntime } = await import(path.join(this.repo, 'packages/core/dist/index.js'));
    const backend = engine.container.resolve(IRuntime);
    if (backend.opts) {
      const steps = new TimingLog();
      backend.opts.timings = steps;
      backend.timings = (id) => steps.get(id);
    }
    const mark = (label) => this.marks.push([label, now()]);
    for (const h of START_HOOKS) {
      const hook = engine.hooks[h];
      hook.tapPromise({ name: MARK, plugin: MARK, stage: -1e9 }, async (...a) => {
        mark(`${h}:enter`);
        return h === 'specBuild' ? a[0] : undefined;
      });
      hook.tapPromise({ name: MARK, plugin: MARK, stage: 1e9 }, async (...a) => {
        mark(`${h}:exit`);
        return h === 'specBuild' ? a[0] : undefined;
      });
    }
    engine.hooks.onStateChange.tapPromise({ name: MARK, plugin: MARK, stage: -1e9 }, async (c) => {
      if (c.to === 'running') mark('onStateChange(running)');
    });
  }

  /**
   * The OCI spec berth hands to runc for `docker run --network none IMAGE true`: a template
   * container is created and started once; it stays (exited) so that the files its spec
   * bind-mounts (hosts, resolv.conf, hostname) exist until the end.
   */
  async templateSpec() {
    const { Id } = await this.api.call('POST', '/containers/create?name=template', { Image: this.image, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } });
    const waited = this.api.call('POST', `/containers/${Id}/wait?condition=next-exit`);
    await this.api.call('POST', `/containers/${Id}/start`);
    await waited;
    const spec = this.daemon.engine.containers.specOf(Id);
    if (!spec) throw new Error('the in-process engine kept no spec of the template container');
    return { id: Id, spec: JSON.parse(JSON.stringify(spec)) };
  }

  async hookBreakdown(runs) {
    const engine = this.daemon.engine;
    const api = this.api;
    const rows = [];
    for (let i = 0; i < runs + 2; i++) {
      const tc = now();
      const { Id } = await api.call('POST', '/containers/create', { Image: this.image, Cmd: process.env.BENCH_CMD ? JSON.parse(process.env.BENCH_CMD) : ['true'], HostConfig: { NetworkMode: 'none' } });
      const createMs = ms(tc, now());
      const waited = api.call('POST', `/containers/${Id}/wait?condition=next-exit`);
      this.marks = [];
      const t0 = now();
      await api.call('POST', `/containers/${Id}/start`);
      const t1 = now();
      await waited;
      const prov = await engine.explain(Id);
      const rec = engine.containers.get(Id);
      const backend = engine.containers.backendOf ? engine.containers.backendOf(rec) : null;
      const bt = { ...(backend?.timings?.(Id) ?? {}) };
      const m = Object.fromEntries(this.marks.map(([k, t]) => [k, t]));
      const seg = (a, b) => (m[a] !== undefined && m[b] !== undefined ? ms(m[a], m[b]) : undefined);
      const r = {
        'create request': createMs,
        'start request (total)': ms(t0, t1),
        'request → beforeMount': m['beforeMount:enter'] ? ms(t0, m['beforeMount:enter']) : undefined,
        'hook beforeMount': seg('beforeMount:enter', 'beforeMount:exit'),
        'hook networking': seg('networking:enter', 'networking:exit'),
        'hook specBuild': seg('specBuild:enter', 'specBuild:exit'),
        'hook runtimeCreate': seg('runtimeCreate:enter', 'runtimeCreate:exit'),
        'backend create (bundle, conmon, runc create)': seg('runtimeCreate:exit', 'beforeStart:enter'),
        'hook beforeStart': seg('beforeStart:enter', 'beforeStart:exit'),
        'backend start + state save': seg('beforeStart:exit', 'onStateChange(running)'),
        'onStateChange → response': m['onStateChange(running)'] ? ms(m['onStateChange(running)'], t1) : undefined,
        'gaps between the first hooks': [seg('beforeMount:exit', 'networking:enter'), seg('networking:exit', 'specBuild:enter'), seg('specBuild:exit', 'runtimeCreate:enter')].reduce((s, x) => s + (x ?? 0), 0),
        backend: bt,
        taps: prov.taps.filter((t) => t.plugin !== MARK).map((t) => ({ hook: t.hook, plugin: t.plugin, tap: t.tap, ms: t.durationMs })),
      };
      const tr = now();
      await api.call('DELETE', `/containers/${Id}?force=1`);
      r['remove request'] = ms(tr, now());
      r['create → removed (API run, as in phase 1)'] = ms(tc, now());
      r.backend = { ...bt, ...(backend?.timings?.(Id) ?? {}) };
      if (i >= 2) rows.push(r);
    }
    const vals = (f) => rows.map(f).filter((x) => typeof x === 'number');
    const keys = Object.keys(rows[0] ?? {}).filter((k) => !['backend', 'taps'].includes(k));
    const segments = keys.map((k) => ({ step: k, median: median(vals((r) => r[k])), p90: quantile(vals((r) => r[k]), 0.9) }));
    const backendKeys = [...new Set(rows.flatMap((r) => Object.keys(r.backend)))];
    const backendSteps = backendKeys.map((k) => ({ step: `runtime-oci timing: ${k}`, median: median(vals((r) => r.backend[k])), p90: quantile(vals((r) => r.backend[k]), 0.9) }));
    const tapKeys = [...new Set(rows.flatMap((r) => r.taps.map((t) => `${t.hook}\t${t.plugin}\t${t.tap}`)))];
    const taps = tapKeys.map((k) => {
      const [hook, plugin, tap] = k.split('\t');
      const xs = rows.map((r) => r.taps.filter((t) => `${t.hook}\t${t.plugin}\t${t.tap}` === k).reduce((s, t) => s + t.ms, 0));
      return { hook, plugin, tap, median: median(xs), p90: quantile(xs, 0.9) };
    });
    return { runs: rows.length, segments, backendSteps, taps };
  }

  async stop() {
    if (!this.daemon) return;
    const d = this.daemon;
    this.daemon = null;
    try {
      const list = await this.api.call('GET', '/containers/json?all=1');
      for (const c of list) await this.api.call('DELETE', `/containers/${c.Id}?force=1`).catch((err) => this.log(`cleanup: in-process remove: ${err.message}`));
    } finally {
      this.api.close();
      await d.shutdown('bench done');
    }
  }
}
