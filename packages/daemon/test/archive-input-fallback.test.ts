/**
 * The archive bad-input and bind-mount table (helpers/archive-table.ts) without the addon
 * (BERTH_NATIVE=0, as where it is not built): the /proc/self/fd walk answers the same.
 */
import { beforeAll, expect, it } from 'vitest';
import { dirFdOps, nativeAddon } from '@berth/native';
import { archiveRace } from './helpers/archive-race.js';
import { archiveTable } from './helpers/archive-table.js';

// before any walk: nativeAddon() reads it once per test file (each file has its own module graph)
process.env.BERTH_NATIVE = '0';

beforeAll(() => {
  expect(nativeAddon()).toBeNull();
});

it('walks through /proc/self/fd', () => {
  expect(dirFdOps().kind).toBe('procfd');
});

archiveTable('archive endpoints: hostile input and bind mounts (/proc/self/fd fallback)');
archiveRace('archive endpoints: a directory swapped for a host symlink during requests (/proc/self/fd fallback)');
