/**
 * GET /events keeps `timeNano` exact from the engine's clock to the JSON the client reads:
 * event times a few nanoseconds apart (beyond 2^53, where a JS number rounds them to the
 * same value) are told apart by `since`/`until`, and each is written as the exact integer.
 */
import { describe, expect, it } from 'vitest';
import type { Clock } from '@berth/core';
import { engineApp } from './helpers/engine-app.js';

// 2026-01-01T00:00:00.123456789Z in ns: far above Number.MAX_SAFE_INTEGER.
const BASE = 1_767_225_600_123_456_789n;

/** A clock that advances 1 ns per reading, from BASE. */
function nanoClock(): Clock {
  let now = BASE;
  return { nowNano: () => now++ };
}

describe('events timeNano precision', () => {
  const app = engineApp();

  it('since/until a nanosecond apart select exactly the events at or after / before them; timeNano is the exact integer', async () => {
    expect(Number(BASE) === Number(BASE + 1n)).toBe(true); // the premise: a number cannot tell them apart
    const { t, inj } = await app.open({ clock: nanoClock() });
    await t.createContainer({ name: 'one' });
    await t.createContainer({ name: 'two' });
    const all = t.engine.events.history().filter((e) => e.Action === 'create');
    expect(all).toHaveLength(2);
    const [first, second] = all as [(typeof all)[0], (typeof all)[0]];
    expect(second.timeNano - first.timeNano).toBeGreaterThan(0n);

    const secs = (ns: bigint) => `${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}`;
    const read = async (query: string) => {
      const r = await inj.request({ url: `/v1.44/events?${query}&filters=${encodeURIComponent(JSON.stringify({ event: ['create'] }))}` });
      expect(r.statusCode, r.text).toBe(200);
      return r.text.trim() === '' ? [] : r.text.trim().split('\n');
    };
    const fromSecond = await read(`since=${secs(second.timeNano)}&until=${secs(second.timeNano)}`);
    expect(fromSecond).toHaveLength(1);
    expect(fromSecond[0]).toContain(`"timeNano":${second.timeNano}}`);
    expect(JSON.parse(fromSecond[0]!).Actor.Attributes.name).toBe('two');

    const upToFirst = await read(`since=${secs(first.timeNano)}&until=${secs(second.timeNano - 1n)}`);
    expect(upToFirst).toHaveLength(1);
    expect(upToFirst[0]).toContain(`"timeNano":${first.timeNano}}`);
    expect(JSON.parse(upToFirst[0]!).Actor.Attributes.name).toBe('one');
  });
});
