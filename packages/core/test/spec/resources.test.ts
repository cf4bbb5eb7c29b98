import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isValidCpuset, parseUlimits, validateResources } from '../../src/spec/index.js';
import type { HostConfig } from '../../src/types.js';
import { build, tempRootfs, thrown } from './helpers.js';

let r: { dir: string; cleanup: () => void };
beforeAll(() => {
  r = tempRootfs();
});
afterAll(() => r.cleanup());

const MiB = 1024 * 1024;

describe('validateResources: dockerd\'s checks and messages', () => {
  it.each<[HostConfig, string]>([
    [{ Memory: 1024 }, 'Minimum memory limit allowed is 6MB'],
    [{ Memory: 64 * MiB, MemorySwap: 32 * MiB }, 'Minimum memoryswap limit should be larger than memory limit, see usage'],
    [{ MemorySwap: 32 * MiB }, 'You should always set the Memory limit when using Memoryswap limit, see usage'],
    [{ MemorySwappiness: 101 }, 'Invalid value: 101, valid memory swappiness range is 0-100'],
    [{ MemorySwappiness: -2 }, 'Invalid value: -2, valid memory swappiness range is 0-100'],
    [{ MemoryReservation: MiB }, 'Minimum memory reservation allowed is 6MB'],
    [{ Memory: 16 * MiB, MemoryReservation: 32 * MiB }, 'Minimum memory limit can not be less than memory reservation limit, see usage'],
    [{ NanoCpus: 1e9, CpuPeriod: 50000 }, 'Conflicting options: Nano CPUs and CPU Period cannot both be set'],
    [{ NanoCpus: 1e9, CpuQuota: 50000 }, 'Conflicting options: Nano CPUs and CPU Quota cannot both be set'],
    [{ NanoCpus: 5e9 }, 'Range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available'],
    [{ CpuPeriod: 500 }, 'CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)'],
    [{ CpuPeriod: 1000001 }, 'CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)'],
    [{ CpuQuota: 500 }, 'CPU cfs quota can not be less than 1ms (i.e. 1000)'],
    [{ CpusetCpus: '0-a' }, 'Invalid value 0-a for cpuset cpus'],
    [{ CpusetMems: '3-1' }, 'Invalid value 3-1 for cpuset mems'],
    [{ BlkioWeight: 5 }, 'Range of blkio weight is from 10 to 1000'],
    [{ BlkioWeight: 1001 }, 'Range of blkio weight is from 10 to 1000'],
    [{ OomScoreAdj: 1001 }, 'Invalid value 1001, range for oom score adj is [-1000, 1000]'],
    [{ OomScoreAdj: -1001 }, 'Invalid value -1001, range for oom score adj is [-1000, 1000]'],
    [{ ShmSize: -1 }, 'SHM size can not be less than 0'],
  ])('%j → %s', (hc, message) => {
    const err = thrown(() => validateResources(hc, 4));
    expect(err.kind).toBe('InvalidParameter');
    expect(err.message).toBe(message);
  });

  it('accepts the edges', () => {
    for (const hc of [
      { Memory: 6 * MiB, MemorySwap: -1 },
      { MemorySwappiness: -1 },
      { MemorySwappiness: 0 },
      { CpuQuota: -1 },
      { CpuPeriod: 1000, CpuQuota: 1000 },
      { NanoCpus: 4e9 },
      { BlkioWeight: 10 },
      { OomScoreAdj: -1000 },
      { CpusetCpus: '0-3,5,7-8' },
    ]) {
      expect(() => validateResources(hc, 4)).not.toThrow();
    }
    expect(isValidCpuset('')).toBe(true);
  });
});

describe('linux.resources in the built spec', () => {
  it('defaults: cpu shares 0, OOM killer on, blkio weight 0, no pids limit', async () => {
    const res = (await build(r.dir)).linux!.resources!;
    expect(res.memory).toEqual({ disableOOMKiller: false });
    expect(res.cpu).toEqual({ shares: 0 });
    expect(res.blockIO).toEqual({ weight: 0 });
    expect(res.pids).toBeUndefined();
  });

  it('maps memory, cpu, pids and blkio fields', async () => {
    const res = (
      await build(r.dir, {}, {
        Memory: 64 * MiB,
        MemorySwap: 128 * MiB,
        MemoryReservation: 32 * MiB,
        MemorySwappiness: 10,
        OomKillDisable: true,
        CpuShares: 512,
        CpuQuota: 50000,
        CpuPeriod: 100000,
        CpuRealtimePeriod: 1000000,
        CpuRealtimeRuntime: 950000,
        CpusetCpus: '0-1',
        CpusetMems: '0',
        PidsLimit: 100,
        BlkioWeight: 300,
      })
    ).linux!.resources!;
    expect(res.memory).toEqual({ limit: 64 * MiB, swap: 128 * MiB, reservation: 32 * MiB, swappiness: 10, disableOOMKiller: true });
    expect(res.cpu).toEqual({ shares: 512, quota: 50000, period: 100000, realtimePeriod: 1000000, realtimeRuntime: 950000, cpus: '0-1', mems: '0' });
    expect(res.pids).toEqual({ limit: 100 });
    expect(res.blockIO).toEqual({ weight: 300 });
  });

  it('NanoCpus → quota over a 100000 period', async () => {
    expect((await build(r.dir, {}, { NanoCpus: 1_500_000_000 })).linux!.resources!.cpu).toEqual({ shares: 0, quota: 150000, period: 100000 });
    expect((await build(r.dir, {}, { NanoCpus: 10_000_000 })).linux!.resources!.cpu).toEqual({ shares: 0, quota: 1000, period: 100000 });
  });

  it.each([0, -1, null, undefined])('PidsLimit %j = unlimited', async (limit) => {
    expect((await build(r.dir, {}, { PidsLimit: limit })).linux!.resources!.pids).toBeUndefined();
  });

  it('MemorySwap -1 = unlimited swap; MemorySwappiness null or -1 = unset', async () => {
    const mem = (await build(r.dir, {}, { Memory: 64 * MiB, MemorySwap: -1, MemorySwappiness: -1 })).linux!.resources!.memory!;
    expect(mem.swap).toBe(-1);
    expect(mem.swappiness).toBeUndefined();
  });

  it('invalid resources fail the build as InvalidParameter', async () => {
    await expect(build(r.dir, {}, { NanoCpus: 1e9, CpuQuota: 50000 })).rejects.toMatchObject({
      kind: 'InvalidParameter',
      message: 'Conflicting options: Nano CPUs and CPU Quota cannot both be set',
    });
  });

  it('OomScoreAdj → process.oomScoreAdj (0 by default)', async () => {
    expect((await build(r.dir)).process!.oomScoreAdj).toBe(0);
    expect((await build(r.dir, {}, { OomScoreAdj: -500 })).process!.oomScoreAdj).toBe(-500);
  });
});

describe('dockerd\'s create-time adjustments and host limits', () => {
  it('a memory limit without MemorySwap gets swap = 2 × memory', async () => {
    expect((await build(r.dir, {}, { Memory: 64 * MiB })).linux!.resources!.memory).toEqual({ limit: 64 * MiB, swap: 128 * MiB, disableOOMKiller: false });
  });

  it('cgroup v2 has no swappiness: dropped', async () => {
    const spec = await build(r.dir, {}, { MemorySwappiness: 10 }, { host: { capLastCap: 40, cgroupV2: true, cpuCount: 4 } });
    expect(spec.linux!.resources!.memory!.swappiness).toBeUndefined();
  });
});

describe('per-device blkio settings', () => {
  it('resolve the device numbers of the host paths', async () => {
    const res = (
      await build(r.dir, {}, {
        BlkioWeightDevice: [{ Path: '/dev/null', Weight: 200 }],
        BlkioDeviceReadBps: [{ Path: '/dev/null', Rate: 1048576 }],
        BlkioDeviceWriteBps: [{ Path: '/dev/zero', Rate: 2048 }],
        BlkioDeviceReadIOps: [{ Path: '/dev/null', Rate: 100 }],
        BlkioDeviceWriteIOps: [{ Path: '/dev/null', Rate: 50 }],
      })
    ).linux!.resources!.blockIO!;
    expect(res).toEqual({
      weight: 0,
      weightDevice: [{ major: 1, minor: 3, weight: 200 }],
      throttleReadBpsDevice: [{ major: 1, minor: 3, rate: 1048576 }],
      throttleWriteBpsDevice: [{ major: 1, minor: 5, rate: 2048 }],
      throttleReadIOPSDevice: [{ major: 1, minor: 3, rate: 100 }],
      throttleWriteIOPSDevice: [{ major: 1, minor: 3, rate: 50 }],
    });
  });

  it('refuse bad weights, rates and paths', async () => {
    await expect(build(r.dir, {}, { BlkioWeightDevice: [{ Path: '/dev/null', Weight: 5 }] })).rejects.toMatchObject({
      kind: 'InvalidParameter',
      message: 'invalid weight for device /dev/null: 5, range is from 10 to 1000',
    });
    await expect(build(r.dir, {}, { BlkioDeviceReadBps: [{ Path: '/dev/null', Rate: -1 }] })).rejects.toMatchObject({ kind: 'InvalidParameter' });
    await expect(build(r.dir, {}, { BlkioDeviceReadBps: [{ Path: '/dev/nonexistent-berth', Rate: 1 }] })).rejects.toMatchObject({
      kind: 'InvalidParameter',
      message: 'error getting block device information for /dev/nonexistent-berth: no such file or directory',
    });
  });
});

describe('fields berth does not support yet fail loudly', () => {
  it('DeviceRequests → NotImplemented', async () => {
    await expect(build(r.dir, {}, { DeviceRequests: [{ Driver: 'nvidia', Count: -1 }] })).rejects.toMatchObject({ kind: 'NotImplemented' });
    await build(r.dir, {}, { DeviceRequests: [], VolumesFrom: [] });
  });
});

describe('Ulimits → process.rlimits', () => {
  it('maps names to RLIMIT_*, a later entry of the same name wins', () => {
    expect(
      parseUlimits([
        { Name: 'nofile', Soft: 1024, Hard: 2048 },
        { Name: 'NPROC', Soft: 100, Hard: 100 },
        { Name: 'nofile', Soft: 10, Hard: 20 },
      ]),
    ).toEqual([
      { type: 'RLIMIT_NOFILE', soft: 10, hard: 20 },
      { type: 'RLIMIT_NPROC', soft: 100, hard: 100 },
    ]);
  });

  it('refuses unknown names, soft > hard, negative values', () => {
    expect(thrown(() => parseUlimits([{ Name: 'bogus', Soft: 1, Hard: 1 }])).message).toBe('invalid ulimit type: bogus');
    expect(thrown(() => parseUlimits([{ Name: 'nofile', Soft: 2048, Hard: 1024 }])).message).toBe(
      'ulimit soft limit must be less than or equal to hard limit: 2048 > 1024',
    );
    expect(thrown(() => parseUlimits([{ Name: 'core', Soft: -1, Hard: -1 }])).kind).toBe('InvalidParameter');
  });

  it('in the spec: none by default', async () => {
    expect((await build(r.dir)).process!.rlimits).toBeUndefined();
    expect((await build(r.dir, {}, { Ulimits: [{ Name: 'nofile', Soft: 1024, Hard: 2048 }] })).process!.rlimits).toEqual([
      { type: 'RLIMIT_NOFILE', soft: 1024, hard: 2048 },
    ]);
  });
});
