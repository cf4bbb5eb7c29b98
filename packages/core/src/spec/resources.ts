import { InvalidParameterError } from '../errors.js';
import { stat } from 'node:fs/promises';
import type { OciResources, OciRlimit, OciSpec } from '../oci.js';
import { splitDevNumber } from './devices.js';
import type { HostConfig, Ulimit } from '../types.js';
import { DEFAULT_CPU_PERIOD } from './defaults.js';
import type { SpecOpt } from './opts.js';

const MIN_MEMORY = 6 * 1024 * 1024;

const bad = (msg: string) => new InvalidParameterError(msg);

/** A cpuset list: "0-3,5,7-8". */
export function isValidCpuset(s: string): boolean {
  if (s === '') return true;
  return s.split(',').every((part) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    return m !== null && (m[2] === undefined || Number(m[2]) >= Number(m[1]));
  });
}

/**
 * Checks HostConfig resources like dockerd's verifyPlatformContainerResources, with its
 * messages. `cpuCount` bounds NanoCpus ("Range of CPUs is from 0.01 to N.00, …").
 */
export function validateResources(hc: HostConfig, cpuCount?: number): void {
  const memory = hc.Memory ?? 0;
  const swap = hc.MemorySwap ?? 0;
  const reservation = hc.MemoryReservation ?? 0;
  // dockerd: any non-zero limit below 6 MB, negative ones too
  if (memory !== 0 && memory < MIN_MEMORY) throw bad('Minimum memory limit allowed is 6MB');
  if (memory > 0 && swap > 0 && swap < memory) throw bad('Minimum memoryswap limit should be larger than memory limit, see usage');
  if (memory === 0 && swap > 0) throw bad('You should always set the Memory limit when using Memoryswap limit, see usage');
  if (swap < -1) throw bad(`invalid memory swap limit: ${swap}`);
  const swappiness = hc.MemorySwappiness;
  if (swappiness !== undefined && swappiness !== null && swappiness !== -1 && (swappiness < 0 || swappiness > 100)) {
    throw bad(`Invalid value: ${swappiness}, valid memory swappiness range is 0-100`);
  }
  if (reservation < 0) throw bad('invalid memory reservation: must not be negative');
  if (reservation > 0 && reservation < MIN_MEMORY) throw bad('Minimum memory reservation allowed is 6MB');
  if (memory > 0 && reservation > 0 && memory < reservation) {
    throw bad('Minimum memory limit can not be less than memory reservation limit, see usage');
  }
  const nano = hc.NanoCpus ?? 0;
  const period = hc.CpuPeriod ?? 0;
  const quota = hc.CpuQuota ?? 0;
  if (nano > 0 && period > 0) throw bad('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  if (nano > 0 && quota > 0) throw bad('Conflicting options: Nano CPUs and CPU Quota cannot both be set');
  if (cpuCount !== undefined && (nano < 0 || nano > cpuCount * 1e9)) {
    throw bad(`Range of CPUs is from 0.01 to ${cpuCount}.00, as there are only ${cpuCount} CPUs available`);
  }
  if (cpuCount === undefined && nano < 0) throw bad('invalid NanoCpus: must not be negative');
  if (period !== 0 && (period < 1000 || period > 1000000)) {
    throw bad('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
  }
  if (quota > 0 && quota < 1000) throw bad('CPU cfs quota can not be less than 1ms (i.e. 1000)');
  if (quota < -1) throw bad(`invalid CPU cfs quota: ${quota}`);
  if ((hc.CpuShares ?? 0) < 0) throw bad(`invalid CPU shares: ${hc.CpuShares}`);
  if (hc.CpusetCpus && !isValidCpuset(hc.CpusetCpus)) throw bad(`Invalid value ${hc.CpusetCpus} for cpuset cpus`);
  if (hc.CpusetMems && !isValidCpuset(hc.CpusetMems)) throw bad(`Invalid value ${hc.CpusetMems} for cpuset mems`);
  const weight = hc.BlkioWeight ?? 0;
  if (weight > 0 && (weight < 10 || weight > 1000)) throw bad('Range of blkio weight is from 10 to 1000');
  if (weight < 0) throw bad('Range of blkio weight is from 10 to 1000');
  const oom = hc.OomScoreAdj ?? 0;
  if (oom < -1000 || oom > 1000) throw bad(`Invalid value ${oom}, range for oom score adj is [-1000, 1000]`);
  if ((hc.ShmSize ?? 0) < 0) throw bad('SHM size can not be less than 0');
}

/**
 * linux.resources from HostConfig, like dockerd's WithResources: memory (limit, reservation,
 * swap, swappiness, OOM killer), cpu (shares, quota/period, NanoCpus → quota with period
 * 100000, cpuset), pids (0 or negative = unlimited), blkio weight. Validates first.
 */
export function withResources(hc: HostConfig, cpuCount?: number, opts: { cgroupV2?: boolean; blockIO?: BlockIODevices } = {}): SpecOpt {
  validateResources(hc, cpuCount);
  return (spec: OciSpec) => {
    const prev = spec.linux?.resources ?? {};
    const memory: NonNullable<OciResources['memory']> = {};
    if (hc.Memory) memory.limit = hc.Memory;
    if (hc.MemoryReservation) memory.reservation = hc.MemoryReservation;
    // dockerd (adaptContainerSettings): a memory limit without MemorySwap gets swap = 2 × memory
    if (hc.MemorySwap) memory.swap = hc.MemorySwap;
    else if (hc.Memory && hc.Memory > 0) memory.swap = hc.Memory * 2;
    // cgroup v2 has no swappiness: dockerd drops it with a warning, so does berth
    const swappiness = hc.MemorySwappiness;
    if (!opts.cgroupV2 && swappiness !== undefined && swappiness !== null && swappiness >= 0) memory.swappiness = swappiness;
    if (hc.KernelMemoryTCP) memory.kernelTCP = hc.KernelMemoryTCP;
    memory.disableOOMKiller = hc.OomKillDisable === true;

    const cpu: NonNullable<OciResources['cpu']> = { shares: hc.CpuShares ?? 0 };
    if (hc.NanoCpus && hc.NanoCpus > 0) {
      cpu.quota = Math.round((hc.NanoCpus * DEFAULT_CPU_PERIOD) / 1e9);
      cpu.period = DEFAULT_CPU_PERIOD;
    } else {
      if (hc.CpuQuota) cpu.quota = hc.CpuQuota;
      if (hc.CpuPeriod) cpu.period = hc.CpuPeriod;
    }
    if (hc.CpuRealtimeRuntime) cpu.realtimeRuntime = hc.CpuRealtimeRuntime;
    if (hc.CpuRealtimePeriod) cpu.realtimePeriod = hc.CpuRealtimePeriod;
    if (hc.CpusetCpus) cpu.cpus = hc.CpusetCpus;
    if (hc.CpusetMems) cpu.mems = hc.CpusetMems;

    const blockIO: NonNullable<OciResources['blockIO']> = { weight: hc.BlkioWeight ?? 0 };
    const b = opts.blockIO;
    if (b?.weightDevice.length) blockIO.weightDevice = b.weightDevice.map((d) => ({ ...d }));
    if (b?.throttleReadBpsDevice.length) blockIO.throttleReadBpsDevice = b.throttleReadBpsDevice.map((d) => ({ ...d }));
    if (b?.throttleWriteBpsDevice.length) blockIO.throttleWriteBpsDevice = b.throttleWriteBpsDevice.map((d) => ({ ...d }));
    if (b?.throttleReadIOPSDevice.length) blockIO.throttleReadIOPSDevice = b.throttleReadIOPSDevice.map((d) => ({ ...d }));
    if (b?.throttleWriteIOPSDevice.length) blockIO.throttleWriteIOPSDevice = b.throttleWriteIOPSDevice.map((d) => ({ ...d }));
    const resources: OciResources = { ...prev, memory, cpu, blockIO };
    if (hc.PidsLimit && hc.PidsLimit > 0) resources.pids = { limit: hc.PidsLimit };
    else delete resources.pids;
    return { ...spec, linux: { ...(spec.linux ?? {}), resources } };
  };
}

/** Ulimit names Docker accepts (go-units), → RLIMIT_*. */
export const ULIMIT_NAMES: readonly string[] = Object.freeze([
  'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack',
]);

/** HostConfig.Ulimits → process.rlimits ("invalid ulimit type: x", soft ≤ hard checked early). */
export function parseUlimits(ulimits: readonly Ulimit[] | null | undefined): OciRlimit[] {
  const out: OciRlimit[] = [];
  for (const u of ulimits ?? []) {
    const name = String(u.Name ?? '').toLowerCase();
    if (!ULIMIT_NAMES.includes(name)) throw bad(`invalid ulimit type: ${u.Name}`);
    if (!Number.isInteger(u.Soft) || !Number.isInteger(u.Hard)) throw bad(`invalid ulimit ${name}: soft and hard must be integers`);
    if (u.Soft < 0 || u.Hard < 0) throw bad(`invalid ulimit ${name}: negative (unlimited) values are not supported`);
    if (u.Soft > u.Hard) throw bad(`ulimit soft limit must be less than or equal to hard limit: ${u.Soft} > ${u.Hard}`);
    const rl = { type: `RLIMIT_${name.toUpperCase()}`, soft: u.Soft, hard: u.Hard };
    const i = out.findIndex((r) => r.type === rl.type);
    if (i >= 0) out[i] = rl;
    else out.push(rl);
  }
  return out;
}

export function withRlimits(rlimits: readonly OciRlimit[]): SpecOpt {
  return (spec: OciSpec) => {
    const process = { ...(spec.process ?? { user: { uid: 0, gid: 0 }, cwd: '/' }) };
    if (rlimits.length > 0) process.rlimits = rlimits.map((r) => ({ ...r }));
    else delete process.rlimits;
    return { ...spec, process };
  };
}

type DevRate = { major: number; minor: number; rate: number };

/** HostConfig.BlkioWeightDevice and BlkioDevice{Read,Write}{Bps,IOps}, resolved to major:minor. */
export interface BlockIODevices {
  weightDevice: Array<{ major: number; minor: number; weight: number }>;
  throttleReadBpsDevice: DevRate[];
  throttleWriteBpsDevice: DevRate[];
  throttleReadIOPSDevice: DevRate[];
  throttleWriteIOPSDevice: DevRate[];
}

async function devNumber(p: string): Promise<{ major: number; minor: number }> {
  try {
    return splitDevNumber((await stat(p, { bigint: true })).rdev);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw bad(`error getting block device information for ${p}: ${code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
  }
}

/** Stats the host devices of the per-device blkio settings (weight 10-1000, rates ≥ 0). */
export async function resolveBlockIODevices(hc: HostConfig): Promise<BlockIODevices> {
  const out: BlockIODevices = { weightDevice: [], throttleReadBpsDevice: [], throttleWriteBpsDevice: [], throttleReadIOPSDevice: [], throttleWriteIOPSDevice: [] };
  for (const d of hc.BlkioWeightDevice ?? []) {
    if (!Number.isInteger(d.Weight) || d.Weight < 10 || d.Weight > 1000) throw bad(`invalid weight for device ${d.Path}: ${d.Weight}, range is from 10 to 1000`);
    out.weightDevice.push({ ...(await devNumber(d.Path)), weight: d.Weight });
  }
  const rates: Array<[keyof HostConfig, Exclude<keyof BlockIODevices, 'weightDevice'>]> = [
    ['BlkioDeviceReadBps', 'throttleReadBpsDevice'],
    ['BlkioDeviceWriteBps', 'throttleWriteBpsDevice'],
    ['BlkioDeviceReadIOps', 'throttleReadIOPSDevice'],
    ['BlkioDeviceWriteIOps', 'throttleWriteIOPSDevice'],
  ];
  for (const [field, key] of rates) {
    for (const d of (hc[field] as Array<{ Path: string; Rate: number }> | null | undefined) ?? []) {
      if (!Number.isInteger(d.Rate) || d.Rate < 0) throw bad(`invalid rate for device ${d.Path}: ${d.Rate}. The correct format is <device-path>:<number>`);
      out[key].push({ ...(await devNumber(d.Path)), rate: d.Rate });
    }
  }
  return out;
}
