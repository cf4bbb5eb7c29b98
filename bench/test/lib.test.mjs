import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient, load, pool } from '../lib/http.mjs';
import { summarizeProfile } from '../lib/profile.mjs';
import { bootstrapMedianDiff, fmtMs, mannWhitney, normalCdf, quantile, summary } from '../lib/stats.mjs';
import { fdCount } from '../lib/procs.mjs';
import { cdfChart, lineChart } from '../lib/svg.mjs';

describe('stats', () => {
  it('nearest-rank quantiles', () => {
    const xs = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
    expect(quantile(xs, 0.5)).toBe(5);
    expect(quantile(xs, 0.9)).toBe(9);
    expect(quantile(xs, 1)).toBe(10);
    expect(quantile(xs, 0)).toBe(1);
    expect(quantile([], 0.5)).toBeNaN();
    expect(summary([3, 1, 2])).toMatchObject({ n: 3, min: 1, median: 2, max: 3 });
  });
  it('formats milliseconds', () => {
    expect(fmtMs(12.345)).toBe('12.3 ms');
    expect(fmtMs(1234)).toBe('1.23 s');
    expect(fmtMs(NaN)).toBe('n/a');
  });
  it('Mann–Whitney U: the values scipy.stats.mannwhitneyu(method="asymptotic") gives', () => {
    expect(normalCdf(0)).toBeCloseTo(0.5, 7);
    expect(normalCdf(1.96)).toBeCloseTo(0.975, 4);
    expect(normalCdf(-1.96)).toBeCloseTo(0.025, 4);
    // scipy 1.17: (0, 0.012185780355344813), (59.5, 0.7090244847321532), (4.5, 0.1987717336168393)
    const a = mannWhitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]);
    expect(a.u).toBe(0);
    expect(a.p).toBeCloseTo(0.0121858, 5);
    const b = mannWhitney([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5], [2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5]);
    expect(b.u).toBe(59.5);
    expect(b.p).toBeCloseTo(0.709024, 5);
    const c = mannWhitney([10, 10, 10, 12], [10, 11, 11, 13, 14]); // ties
    expect(c.u).toBe(4.5);
    expect(c.p).toBeCloseTo(0.198772, 5);
    expect(mannWhitney([6, 7, 8, 9, 10], [1, 2, 3, 4, 5]).u).toBe(25);
    expect(mannWhitney([4, 4, 4], [4, 4, 4]).p).toBe(1);
  });
  it('bootstrap interval of a median difference: seeded, paired by round', () => {
    const base = Array.from({ length: 31 }, (_, i) => 100 + ((i * 37) % 29));
    const shifted = base.map((v) => v + 10);
    // paired: every resample moves both sides together, so the difference is exactly the shift
    expect(bootstrapMedianDiff(shifted, base, { paired: true })).toMatchObject({ diff: 10, lo: 10, hi: 10 });
    // unpaired: an interval around the shift, the same for the same seed
    const u = bootstrapMedianDiff(shifted, base);
    expect(u.lo).toBeLessThan(10);
    expect(u.hi).toBeGreaterThan(10);
    expect(u.lo).toBeGreaterThan(0);
    expect(bootstrapMedianDiff(shifted, base)).toEqual(u);
    // no difference: the interval holds 0
    const same = bootstrapMedianDiff(base, [...base].reverse());
    expect(same.lo).toBeLessThanOrEqual(0);
    expect(same.hi).toBeGreaterThanOrEqual(0);
    expect(() => bootstrapMedianDiff([1, 2], [1], { paired: true })).toThrow(/different lengths/);
  });
});

describe('profile summary', () => {
  const dirs = [];
  afterEach(() => dirs.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  it('attributes self and inclusive time per function and package', () => {
    // root → a (berth core) → spawn (node internal); root → (idle)
    const cf = (functionName, url) => ({ functionName, url, lineNumber: 0, columnNumber: 0, scriptId: '0' });
    const prof = {
      nodes: [
        { id: 1, callFrame: cf('(root)', ''), children: [2, 4] },
        { id: 2, callFrame: cf('start', 'file:///r/packages/core/dist/service.js'), children: [3] },
        { id: 3, callFrame: cf('spawn', 'node:internal/child_process'), children: [] },
        { id: 4, callFrame: cf('(idle)', ''), children: [] },
      ],
      samples: [3, 3, 3, 2, 4, 4],
      timeDeltas: [1000, 1000, 1000, 1000, 5000, 5000],
      startTime: 0,
      endTime: 14000,
    };
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-test-'));
    dirs.push(d);
    const f = path.join(d, 'p.cpuprofile');
    fs.writeFileSync(f, JSON.stringify(prof));
    const s = summarizeProfile(f);
    expect(s.sampledMs).toBe(14);
    expect(s.busyMs).toBe(4);
    expect(s.selfTop[0]).toMatchObject({ ms: 3, pctBusy: 75 });
    expect(s.selfTop[0].fn).toMatch(/^spawn /);
    expect(s.categories.find((c) => c.name === 'berth: @berth/core')?.ms).toBe(1);
    expect(s.totalTopBerth[0]).toMatchObject({ ms: 4, pctBusy: 100 });
  });
});

describe('chart', () => {
  it('draws one CDF per series with its median in the legend', () => {
    const svg = cdfChart([{ title: 'run', series: [{ name: 'berth', values: [1, 2, 3] }, { name: 'dockerd', values: [4, 5, 6, 7] }] }], { title: 't & <x>' });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/<polyline/g)).toHaveLength(2);
    expect(svg).toContain('p50 2.0');
    expect(svg).toContain('p50 5.0');
    expect(svg).toContain('t &amp; &lt;x&gt;');
  });
  it('draws a value against the sizes measured, one line and a point per size', () => {
    const svg = lineChart([{ title: 'ps', xLabel: 'containers present', series: [{ name: 'berth', points: [[0, 2], [100, 4], [1000, 20]] }, { name: 'dockerd p90', points: [[0, 1], [100, 3], [1000, NaN]] }] }], { title: 'scale' });
    expect(svg.match(/<polyline/g)).toHaveLength(2);
    expect(svg.match(/<circle/g)).toHaveLength(5); // the NaN point is left out
    expect(svg).toContain('stroke-dasharray'); // p90 dashed
    expect(svg).toContain('2 at 0 → 20 at 1000');
    for (const x of ['>0<', '>100<', '>1000<']) expect(svg).toContain(x);
  });
});

describe('procs', () => {
  it('counts open fds, one more after opening a file', () => {
    const before = fdCount(process.pid);
    const fd = fs.openSync(os.tmpdir(), 'r');
    try {
      expect(fdCount(process.pid)).toBe(before + 1);
    } finally {
      fs.closeSync(fd);
    }
    expect(fdCount(2 ** 22 + 1)).toBeNaN();
  });
});

describe('http helpers', () => {
  let server;
  const tmp = [];
  afterEach(async () => {
    if (server) await new Promise((r) => server.close(r));
    server = undefined;
    tmp.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
  });
  const listen = async (handler) => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-http-'));
    tmp.push(d);
    const sock = path.join(d, 's.sock');
    server = http.createServer(handler);
    await new Promise((r) => server.listen(sock, r));
    return sock;
  };

  it('pool keeps at most N in flight and rejects on the first error', async () => {
    let active = 0;
    let peak = 0;
    const out = await pool(20, 3, async (i) => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 5));
      active--;
      return i * 2;
    });
    expect(peak).toBe(3);
    expect(out[19]).toBe(38);
    await expect(pool(5, 2, async (i) => { if (i === 3) throw new Error('boom'); })).rejects.toThrow('boom');
  });

  it('ApiClient reports non-2xx with the daemon message; load counts errors', async () => {
    const sock = await listen((req, res) => {
      if (req.url.endsWith('/bad')) {
        res.statusCode = 404;
        res.end(JSON.stringify({ message: 'No such container: x' }));
      } else res.end('{"ok":true}');
    });
    const api = new ApiClient(sock, '1.41');
    await expect(api.call('GET', '/good')).resolves.toEqual({ ok: true });
    await expect(api.call('GET', '/bad')).rejects.toThrow('404: No such container: x');
    api.close();
    const r = await load(sock, ['/v1.41/good', '/v1.41/bad'], { connections: 4, durationMs: 200 });
    expect(r.requests).toBeGreaterThan(0);
    expect(r.errors).toBeGreaterThan(0);
    expect(r.firstError).toContain('404');
  });
});
