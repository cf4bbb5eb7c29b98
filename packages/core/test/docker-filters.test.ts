/** Docker's filter, label and timestamp helpers (core/src/docker-filters.ts), as moby's api/types/filters and api/types/time read them. */
import { describe, expect, it } from 'vitest';
import { checkFilterNames, errorKind, filterValues, filtersFrom, matchLabels, matchNoLabel, parseDockerTime, parseDockerTimeMs } from '../src/index.js';

const NOW = 1_700_000_000_000_000_000n;

describe('filters', () => {
  it('reads the list form and the legacy map form; refuses unknown names and wrong shapes with a 400', () => {
    const f = filtersFrom({ label: ['a=b', 'c'], dangling: { true: true, false: false } }, ['label', 'dangling']);
    expect(filterValues(f, 'label')).toEqual(['a=b', 'c']);
    expect(filterValues(f, 'dangling')).toEqual(['true']);
    expect(filterValues(f, 'until')).toEqual([]);
    expect(filtersFrom(null, []).size).toBe(0);
    for (const [value, message] of [
      [{ bogus: ['1'] }, "invalid filter 'bogus'"],
      [['label'], 'invalid filter: expected a JSON object'],
      [{ label: [1] }, "invalid filter 'label': values must be strings"],
      [{ label: { a: 'yes' } }, "invalid filter 'label': values must be booleans"],
      [{ label: 'a' }, "invalid filter 'label': expected a list of strings"],
    ] as const) {
      let err: unknown;
      try {
        filtersFrom(value, ['label']);
      } catch (e) {
        err = e;
      }
      expect(errorKind(err)).toBe('InvalidParameter');
      expect((err as Error).message).toBe(message);
    }
    expect(() => checkFilterNames(new Map([['x', new Set<string>()]]), ['label'])).toThrow("invalid filter 'x'");
    expect(() => checkFilterNames(undefined, [])).not.toThrow();
  });

  it('label: every key or key=value matches; label!: none does', () => {
    const labels = { team: 'a', tier: 'web', empty: '' };
    expect(matchLabels(undefined, labels)).toBe(true);
    expect(matchLabels(new Set(['team', 'tier=web']), labels)).toBe(true);
    expect(matchLabels(new Set(['team=b']), labels)).toBe(false);
    expect(matchLabels(new Set(['empty=']), labels)).toBe(true);
    expect(matchLabels(new Set(['team']), null)).toBe(false);
    // a key inherited from Object.prototype is no label
    expect(matchLabels(new Set(['constructor']), labels)).toBe(false);
    expect(matchNoLabel(new Set(['team=b', 'owner']), labels)).toBe(true);
    expect(matchNoLabel(new Set(['team=b', 'tier']), labels)).toBe(false);
    expect(matchNoLabel(new Set(), labels)).toBe(true);
  });
});

describe('Docker timestamps', () => {
  it('Unix seconds with a fraction, exact to the nanosecond', () => {
    expect(parseDockerTime('1700000000.123456789', 'since', NOW)).toBe(1_700_000_000_123_456_789n);
    expect(parseDockerTime('1700000000', 'since', NOW)).toBe(1_700_000_000_000_000_000n);
    expect(parseDockerTime('1.5', 'since', NOW)).toBe(1_500_000_000n);
  });

  it('durations before now and RFC 3339 dates', () => {
    expect(parseDockerTime('10m', 'until', NOW)).toBe(NOW - 600_000_000_000n);
    expect(parseDockerTime('1.5h', 'until', NOW)).toBe(NOW - 5_400_000_000_000n);
    expect(parseDockerTime('250ms', 'until', NOW)).toBe(NOW - 250_000_000n);
    expect(parseDockerTime('2023-11-14T22:13:20.5Z', 'since', NOW)).toBe(1_700_000_000_500_000_000n);
    expect(parseDockerTimeMs('10s', 'until', 1_000_000)).toBe(990_000);
  });

  it('absent is null; anything else is a 400 naming the argument', () => {
    expect(parseDockerTime(null, 'since', NOW)).toBeNull();
    expect(parseDockerTime('', 'since', NOW)).toBeNull();
    expect(parseDockerTimeMs(undefined, 'until', 0)).toBeNull();
    let err: unknown;
    try {
      parseDockerTime('yesterday', 'until', NOW);
    } catch (e) {
      err = e;
    }
    expect(errorKind(err)).toBe('InvalidParameter');
    expect((err as Error).message).toMatch(/^invalid value for until: "yesterday"/);
  });
});
