/**
 * GET /containers/json over a real Engine (FakeRuntime, no root): the filters run on the live
 * records and only the matches are copied, so `docker ps --filter label=…` with many containers
 * present does not copy them all, and an unfiltered `docker ps -a` copies none (its summaries
 * are made from the live records) (issue 18; bench/scale.mjs measures it). Counts
 * structuredClone calls — work, not time.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createTestEngine, type TestEngine } from '@berth/testing';
import { apiRoutes, buildApp, enginePort, openInjector, type Injector } from '../src/index.js';
import { facts } from './helpers/fake-port.js';

const N = 60;

describe('container list copies', () => {
  let t: TestEngine;
  let inj: Injector;

  beforeEach(async () => {
    t = await createTestEngine();
    inj = await openInjector(buildApp({ routes: apiRoutes(enginePort(t.engine, { facts: facts() })) }));
    for (let i = 0; i < N; i++) {
      const Labels = { 'io.berth.rootfs': t.rootfs, ...(i % 20 === 0 ? { rare: '1' } : {}) };
      const r = await inj.request({ method: 'POST', url: `/containers/create?name=c${i}`, body: { Image: 'plain', Cmd: ['/bin/app'], Labels } });
      expect(r.statusCode).toBe(201);
    }
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await inj.close();
    await t.dispose();
  });

  it('copies the matching records only', async () => {
    const clone = vi.spyOn(globalThis, 'structuredClone');
    const r = await inj.request({ url: `/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify({ label: ['rare=1'] }))}` });
    expect(r.statusCode).toBe(200);
    expect((r.json() as Array<{ Names: string[] }>).map((c) => c.Names[0]).sort()).toEqual(['/c0', '/c20', '/c40']);
    expect(clone.mock.calls.length).toBeLessThanOrEqual(3);
    clone.mockClear();
    const all = await inj.request({ url: '/containers/json?all=1' });
    expect(all.json()).toHaveLength(N);
  });

  it('without a filter copies no record: the summaries are made from the live records, newest first', async () => {
    const clone = vi.spyOn(globalThis, 'structuredClone');
    const all = await inj.request({ url: '/containers/json?all=1' });
    expect(all.statusCode).toBe(200);
    const names = (all.json() as Array<{ Names: string[]; Labels: Record<string, string> }>).map((c) => c.Names[0]);
    expect(names).toEqual(Array.from({ length: N }, (_, i) => `/c${N - 1 - i}`));
    expect(clone.mock.calls.length).toBe(0); // N before: every record was copied, then summarised
    // the answer shares nothing the next request could see changed
    const limited = await inj.request({ url: '/containers/json?all=1&limit=2' });
    expect((limited.json() as Array<{ Names: string[] }>).map((c) => c.Names[0])).toEqual([`/c${N - 1}`, `/c${N - 2}`]);
  });
});
