/**
 * Container stats (GET /containers/{id}/stats) read from the container's cgroup, v1 or v2,
 * plus /proc/stat for the system CPU time and /proc/<pid>/net/dev for its network.
 * Shapes follow swagger ContainerStatsResponse.
 */
import { readFile, readlink } from 'node:fs/promises';
import os from 'node:os';
import { cgroupDirOf, v1Dir } from './top.js';

const USER_HZ = 100;

async function read(file: string): Promise<string | null> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    return null;
  }
}

async function num(file: string): Promise<number | undefined> {
  const t = await read(file);
  if (t === null || t === '' || t === 'max') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

async function kv(file: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const t = await read(file);
  if (!t) return out;
  for (const line of t.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/** Total host CPU time in nanoseconds (dockerd's system_cpu_usage). */
export async function systemCpuNs(): Promise<number> {
  const t = (await read('/proc/stat')) ?? '';
  const line = t.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return 0;
  const ticks = line.trim().split(/\s+/).slice(1, 8).map(Number).reduce((a, b) => a + b, 0);
  return (ticks * 1e9) / USER_HZ;
}

export interface StatsSample {
  read: string;
  cpu_stats: Record<string, unknown>;
  memory_stats: Record<string, unknown>;
  pids_stats: Record<string, unknown>;
  blkio_stats: Record<string, unknown>;
  networks?: Record<string, Record<string, number>>;
  num_procs: number;
}

function emptyBlkio(): Record<string, unknown> {
  return {
    io_service_bytes_recursive: [],
    io_serviced_recursive: null,
    io_queue_recursive: null,
    io_service_time_recursive: null,
    io_wait_time_recursive: null,
    io_merged_recursive: null,
    io_time_recursive: null,
    sectors_recursive: null,
  };
}

export function zeroSample(): StatsSample {
  return {
    read: '0001-01-01T00:00:00Z',
    cpu_stats: { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } },
    memory_stats: {},
    pids_stats: {},
    blkio_stats: emptyBlkio(),
    num_procs: 0,
  };
}

/**
 * Per-interface counters of a /proc/<pid>/net/dev text (ContainerNetworkStats), without the
 * loopback interface, as dockerd reports only the container's endpoints.
 */
export function parseNetDev(text: string): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const iface = line.slice(0, colon).trim();
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (iface === '' || iface === 'lo' || f.length < 12 || f.some((n) => !Number.isFinite(n))) continue;
    out[iface] = {
      rx_bytes: f[0],
      rx_packets: f[1],
      rx_errors: f[2],
      rx_dropped: f[3],
      tx_bytes: f[8],
      tx_packets: f[9],
      tx_errors: f[10],
      tx_dropped: f[11],
    };
  }
  return out;
}

async function netnsOf(pid: number | 'self'): Promise<string | null> {
  try {
    return await readlink(`/proc/${pid}/ns/net`);
  } catch {
    return null;
  }
}

/**
 * The container's network counters from its network namespace; undefined (the field left out,
 * as dockerd) when it has no interface but loopback (--network none) or when it shares the
 * daemon's namespace (--network host: the host's interfaces are not the container's).
 */
export async function networks(pid: number): Promise<Record<string, Record<string, number>> | undefined> {
  const [mine, theirs] = await Promise.all([netnsOf('self'), netnsOf(pid)]);
  if (!theirs || theirs === mine) return undefined;
  const t = await read(`/proc/${pid}/net/dev`);
  if (!t) return undefined;
  const out = parseNetDev(t);
  return Object.keys(out).length > 0 ? out : undefined;
}

export async function sample(pid: number): Promise<StatsSample> {
  const cg = await cgroupDirOf(pid);
  const s = zeroSample();
  s.read = new Date().toISOString();
  const online = os.cpus().length;
  const system = await systemCpuNs();
  if (cg.v2) {
    const d = cg.dir;
    const cpu = await kv(`${d}/cpu.stat`);
    s.cpu_stats = {
      cpu_usage: { total_usage: (cpu.usage_usec ?? 0) * 1000, usage_in_kernelmode: (cpu.system_usec ?? 0) * 1000, usage_in_usermode: (cpu.user_usec ?? 0) * 1000 },
      system_cpu_usage: system,
      online_cpus: online,
      throttling_data: { periods: cpu.nr_periods ?? 0, throttled_periods: cpu.nr_throttled ?? 0, throttled_time: (cpu.throttled_usec ?? 0) * 1000 },
    };
    const usage = await num(`${d}/memory.current`);
    const limit = (await num(`${d}/memory.max`)) ?? os.totalmem();
    s.memory_stats = { usage: usage ?? 0, limit, stats: await kv(`${d}/memory.stat`) };
    s.pids_stats = { current: (await num(`${d}/pids.current`)) ?? 0, ...((await num(`${d}/pids.max`)) !== undefined ? { limit: await num(`${d}/pids.max`) } : {}) };
    const io = await read(`${d}/io.stat`);
    if (io) {
      const entries: Array<{ major: number; minor: number; op: string; value: number }> = [];
      for (const line of io.split('\n')) {
        const [dev, ...fields] = line.trim().split(/\s+/);
        const [major, minor] = (dev ?? '').split(':').map(Number);
        for (const f of fields) {
          const [k, v] = f.split('=');
          if (k === 'rbytes') entries.push({ major, minor, op: 'read', value: Number(v) });
          if (k === 'wbytes') entries.push({ major, minor, op: 'write', value: Number(v) });
        }
      }
      s.blkio_stats = { ...emptyBlkio(), io_service_bytes_recursive: entries };
    }
    s.num_procs = 0;
  } else {
    const path = (ctrl: string) => v1Dir(ctrl, cg.controllers.get(ctrl) ?? '/');
    const cpuacct = await path('cpuacct');
    const total = (await num(`${cpuacct}/cpuacct.usage`)) ?? 0;
    const percpu = ((await read(`${cpuacct}/cpuacct.usage_percpu`)) ?? '').split(/\s+/).filter(Boolean).map(Number);
    const stat = await kv(`${cpuacct}/cpuacct.stat`);
    const thr = await kv(`${await path('cpu')}/cpu.stat`);
    s.cpu_stats = {
      cpu_usage: {
        total_usage: total,
        ...(percpu.length ? { percpu_usage: percpu } : {}),
        usage_in_kernelmode: ((stat.system ?? 0) * 1e9) / USER_HZ,
        usage_in_usermode: ((stat.user ?? 0) * 1e9) / USER_HZ,
      },
      system_cpu_usage: system,
      online_cpus: online,
      throttling_data: { periods: thr.nr_periods ?? 0, throttled_periods: thr.nr_throttled ?? 0, throttled_time: thr.throttled_time ?? 0 },
    };
    const mem = await path('memory');
    const limit = (await num(`${mem}/memory.limit_in_bytes`)) ?? 0;
    s.memory_stats = {
      usage: (await num(`${mem}/memory.usage_in_bytes`)) ?? 0,
      max_usage: (await num(`${mem}/memory.max_usage_in_bytes`)) ?? 0,
      failcnt: (await num(`${mem}/memory.failcnt`)) ?? 0,
      limit: limit > os.totalmem() ? os.totalmem() : limit,
      stats: await kv(`${mem}/memory.stat`),
    };
    const pids = await path('pids');
    const pidsMax = await num(`${pids}/pids.max`);
    s.pids_stats = { current: (await num(`${pids}/pids.current`)) ?? 0, ...(pidsMax !== undefined ? { limit: pidsMax } : {}) };
    const blk = await read(`${await path('blkio')}/blkio.throttle.io_service_bytes`);
    if (blk) {
      const entries = blk
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .filter((f) => f.length === 3 && f[0].includes(':'))
        .map(([dev, op, v]) => ({ major: Number(dev.split(':')[0]), minor: Number(dev.split(':')[1]), op: op.toLowerCase(), value: Number(v) }));
      s.blkio_stats = { ...emptyBlkio(), io_service_bytes_recursive: entries };
    }
  }
  const net = await networks(pid);
  if (net) s.networks = net;
  return s;
}
