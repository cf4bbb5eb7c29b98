/** Stats and top read from the real cgroup of this test process (v1 or v2, whichever the host has). */
import { describe, expect, it } from 'vitest';
import { cgroupDirOf, containerPids, sample } from '../src/index.js';
import { validateDefinition } from '@berth/testing';

describe('cgroup stats', () => {
  it('reads CPU, memory and pids of a live cgroup in the swagger shapes', async () => {
    const burn = Date.now() + 50;
    while (Date.now() < burn) Math.sqrt(Math.random());
    const s = await sample(process.pid);
    const cpu = s.cpu_stats as { cpu_usage: { total_usage: number }; system_cpu_usage: number; online_cpus: number };
    expect(cpu.cpu_usage.total_usage).toBeGreaterThan(0);
    expect(cpu.system_cpu_usage).toBeGreaterThan(cpu.cpu_usage.total_usage / 1000);
    expect(cpu.online_cpus).toBeGreaterThan(0);
    expect(validateDefinition('ContainerCPUStats', s.cpu_stats)).toBe('');
    expect(validateDefinition('ContainerMemoryStats', s.memory_stats)).toBe('');
    expect(validateDefinition('ContainerPidsStats', s.pids_stats)).toBe('');
    expect(validateDefinition('ContainerBlkioStats', s.blkio_stats)).toBe('');
    expect((s.memory_stats as { usage: number }).usage).toBeGreaterThan(0);
    const later = await sample(process.pid);
    expect((later.cpu_stats as typeof cpu).cpu_usage.total_usage).toBeGreaterThanOrEqual(cpu.cpu_usage.total_usage);
  });

  it('finds the processes of a cgroup', async () => {
    const { dir } = await cgroupDirOf(process.pid);
    expect(dir.startsWith('/sys/fs/cgroup')).toBe(true);
    expect(await containerPids(process.pid)).toContain(process.pid);
  });
});
