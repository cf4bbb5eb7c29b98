// Per-hook time breakdown of a start, read in-process: a second berthd (startBerthd from the
// built dist, same built-ins as the berthd under test) on its own socket and roots. The
// core's interceptors record every tap's duration per container (engine.provenance); the
// bench adds one marker tap at the very first and the very last stage of each start hook so
// that the time between hooks (backend create/start, state saves) is visible too.
import { createRequire } from 'node:module';
import path from 'node:path';
import { ApiClient } from './http.mjs';
import { median, ms, now, quantile } from './stats.mjs';

const START_HOOKS = ['beforeMount', 'networking', 'specBuild', 'runtimeCreate', 'beforeStart'];
const MARK = 'bench:mark';

export async function hookBreakdown({ repo, dir, rootfsDir, image, runs, log }) {
  createRequire(path.join(repo, 'packages/core/package.json'))('reflect-metadata');
  const { parseBerthdArgs } = await import(path.join(repo, 'packages/cli/dist/index.js'));
  const { startBerthd } = await import(path.join(repo, 'packages/daemon/dist/index.js'));
  const sock = path.join(dir, 'b.sock');
  const { config } = parseBerthdArgs(
    ['--host', `unix://${sock}`, '--data-root', path.join(dir, 'data'), '--exec-root', path.join(dir, 'exec'), '--pidfile', path.join(dir, 'b.pid'), '--berth-rootfs-dir', rootfsDir, '--log-level', 'error'],
    () => null,
  );
  const silent = { debug() {}, info() {}, warn() {}, error: (m, f) => log(`in-process berthd: ${m} ${f ? JSON.stringify(f) : ''}`), child() { return this; } };
  const daemon = await startBerthd(config, { handleSignals: false, logger: silent });
  const api = new ApiClient(sock, '1.41');
  const engine = daemon.engine;
  let marks = [];
  const mark = (label) => marks.push([label, now()]);
  for (const h of START_HOOKS) {
    const hook = engine.hooks[h];
    const first = async (...a) => {
      mark(`${h}:enter`);
      return h === 'specBuild' ? a[0] : undefined;
    };
    const last = async (...a) => {
      mark(`${h}:exit`);
      return h === 'specBuild' ? a[0] : undefined;
    };
    hook.tapPromise({ name: MARK, plugin: MARK, stage: -1e9 }, first);
    hook.tapPromise({ name: MARK, plugin: MARK, stage: 1e9 }, last);
  }
  engine.hooks.onStateChange.tapPromise({ name: MARK, plugin: MARK, stage: -1e9 }, async (c) => {
    if (c.to === 'running') mark('onStateChange(running)');
  });

  const rows = [];
  try {
    for (let i = 0; i < runs + 2; i++) {
      const { Id } = await api.call('POST', '/containers/create', { Image: image, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } });
      const waited = api.call('POST', `/containers/${Id}/wait?condition=next-exit`);
      marks = [];
      const t0 = now();
      await api.call('POST', `/containers/${Id}/start`);
      const t1 = now();
      await waited;
      const prov = engine.provenance.get(Id);
      const rec = engine.containers.get(Id);
      const backend = engine.containers.backendOf ? engine.containers.backendOf(rec) : null;
      const bt = backend?.timings?.(Id) ?? {};
      const m = Object.fromEntries(marks.map(([k, t]) => [k, t]));
      const seg = (a, b) => (m[a] !== undefined && m[b] !== undefined ? ms(m[a], m[b]) : undefined);
      const r = {
        total: ms(t0, t1),
        'request → beforeMount': m['beforeMount:enter'] ? ms(t0, m['beforeMount:enter']) : undefined,
        'hook beforeMount': seg('beforeMount:enter', 'beforeMount:exit'),
        'hook networking': seg('networking:enter', 'networking:exit'),
        'hook specBuild': seg('specBuild:enter', 'specBuild:exit'),
        'hook runtimeCreate': seg('runtimeCreate:enter', 'runtimeCreate:exit'),
        'backend create (bundle, conmon, runc create)': seg('runtimeCreate:exit', 'beforeStart:enter'),
        'hook beforeStart': seg('beforeStart:enter', 'beforeStart:exit'),
        'backend start + state save': seg('beforeStart:exit', 'onStateChange(running)'),
        'onStateChange → response': m['onStateChange(running)'] ? ms(m['onStateChange(running)'], t1) : undefined,
        'gaps between hooks': [
          seg('beforeMount:exit', 'networking:enter'),
          seg('networking:exit', 'specBuild:enter'),
          seg('specBuild:exit', 'runtimeCreate:enter'),
        ].reduce((s, x) => s + (x ?? 0), 0),
        backend: bt,
        taps: prov.taps.filter((t) => t.plugin !== MARK).map((t) => ({ hook: t.hook, plugin: t.plugin, tap: t.tap, ms: t.durationMs })),
      };
      await api.call('DELETE', `/containers/${Id}?force=1`);
      if (i >= 2) rows.push(r);
    }
  } finally {
    api.close();
    await daemon.shutdown('bench done');
  }
  // Aggregate: medians per segment and per tap.
  const keys = Object.keys(rows[0] ?? {}).filter((k) => !['backend', 'taps'].includes(k));
  const segments = keys.map((k) => ({ step: k, median: median(rows.map((r) => r[k]).filter((x) => x !== undefined)), p90: quantile(rows.map((r) => r[k]).filter((x) => x !== undefined), 0.9) }));
  const backendKeys = [...new Set(rows.flatMap((r) => Object.keys(r.backend)))];
  const backendSteps = backendKeys.map((k) => ({ step: `backend.${k}`, median: median(rows.map((r) => r.backend[k]).filter((x) => typeof x === 'number')), p90: quantile(rows.map((r) => r.backend[k]).filter((x) => typeof x === 'number'), 0.9) }));
  const tapKeys = [...new Set(rows.flatMap((r) => r.taps.map((t) => `${t.hook}\t${t.plugin}\t${t.tap}`)))];
  const taps = tapKeys.map((k) => {
    const [hook, plugin, tap] = k.split('\t');
    const xs = rows.map((r) => r.taps.filter((t) => `${t.hook}\t${t.plugin}\t${t.tap}` === k).reduce((s, t) => s + t.ms, 0));
    return { hook, plugin, tap, median: median(xs), p90: quantile(xs, 0.9) };
  });
  return { runs: rows.length, segments, backendSteps, taps, raw: rows };
}
