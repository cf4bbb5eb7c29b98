/** probeHost: the kernel facts are read once per process, not at every start (issue 12: a start's spec build). */
import * as fsp from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';
import { probeHost } from '../../src/spec/host.js';

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  return { ...real, readFile: vi.fn(real.readFile), access: vi.fn(real.access) };
});

describe('probeHost', () => {
  it('reads cap_last_cap and probes the cgroup layout once, however many starts ask', async () => {
    const first = await probeHost();
    const second = await probeHost();
    const third = await probeHost();
    expect(second).toEqual(first);
    expect(third).toEqual(first);
    const reads = vi.mocked(fsp.readFile).mock.calls.filter(([p]) => p === '/proc/sys/kernel/cap_last_cap');
    const probes = vi.mocked(fsp.access).mock.calls.filter(([p]) => p === '/sys/fs/cgroup/cgroup.controllers');
    expect(reads).toHaveLength(1);
    expect(probes).toHaveLength(1);
    expect(first.cpuCount).toBeGreaterThan(0);
  });
});
