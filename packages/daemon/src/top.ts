/**
 * `docker top` as dockerd does it: the container's processes are the PIDs in its cgroup;
 * run the host's `ps` with the client's arguments and keep the rows of those PIDs.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { ConflictError, InvalidParameterError, SystemError, readMountInfo } from '@berth/core';

let v1Mounts: Map<string, string> | null = null;

/** Mount points of the cgroup v1 hierarchies by controller (from /proc/self/mountinfo). */
export async function cgroupV1Mounts(): Promise<Map<string, string>> {
  if (v1Mounts) return v1Mounts;
  const m = new Map<string, string>();
  try {
    for (const { fsType, mountPoint, superOptions } of await readMountInfo()) {
      if (fsType !== 'cgroup') continue;
      for (const opt of superOptions) if (!m.has(opt.replace(/^name=/, ''))) m.set(opt.replace(/^name=/, ''), mountPoint);
    }
  } catch {
    // no mountinfo: fall back to the conventional paths
  }
  v1Mounts = m;
  return m;
}

/** The host directory of a v1 controller's cgroup `p`. */
export async function v1Dir(controller: string, p: string): Promise<string> {
  const mounts = await cgroupV1Mounts();
  const base = mounts.get(controller) ?? `/sys/fs/cgroup/${controller}`;
  return `${base}${p === '/' ? '' : p}`;
}

/** The cgroup directory (under /sys/fs/cgroup) holding `pid`, for v2 or the v1 pids/memory controller. */
export async function cgroupDirOf(pid: number): Promise<{ v2: boolean; dir: string; controllers: Map<string, string> }> {
  const text = await readFile(`/proc/${pid}/cgroup`, 'utf8');
  const controllers = new Map<string, string>();
  let unified: string | null = null;
  for (const line of text.trim().split('\n')) {
    const [hid, ctrl, p] = [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1, line.lastIndexOf(':')), line.slice(line.lastIndexOf(':') + 1)];
    if (hid === '0' && ctrl === '') unified = p;
    for (const c of ctrl.split(',')) if (c) controllers.set(c.replace(/^name=/, ''), p);
  }
  const v2 = controllers.size === 0 && unified !== null;
  if (v2) return { v2, dir: `/sys/fs/cgroup${unified}`, controllers };
  const ctrl = controllers.has('pids') ? 'pids' : controllers.has('memory') ? 'memory' : 'cpu';
  return { v2, dir: await v1Dir(ctrl, controllers.get(ctrl) ?? '/'), controllers };
}

export async function containerPids(pid: number): Promise<number[]> {
  const { dir } = await cgroupDirOf(pid);
  try {
    const text = await readFile(`${dir}/cgroup.procs`, 'utf8');
    return text.split('\n').filter(Boolean).map(Number);
  } catch {
    return [pid];
  }
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new SystemError(`ps: ${stderr.toString().trim() || err.message}`, { cause: err }));
      else resolve(stdout.toString());
    });
  });
}

export async function top(pid: number, running: boolean, psArgs: string, containerId: string): Promise<{ Titles: string[]; Processes: string[][] }> {
  if (!running || pid <= 0) throw new ConflictError(`Container ${containerId} is not running`);
  if (/[^\w\s,=%:-]/.test(psArgs)) throw new InvalidParameterError(`ps_args contains characters ps does not take: ${JSON.stringify(psArgs)}`);
  const pids = new Set(await containerPids(pid));
  const args = psArgs.trim() === '' ? ['-ef'] : psArgs.trim().split(/\s+/);
  const out = await run('ps', [...args]);
  const lines = out.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new SystemError('ps printed nothing');
  const titles = lines[0].trim().split(/\s+/);
  const pidCol = titles.indexOf('PID');
  if (pidCol < 0) throw new InvalidParameterError(`Couldn't find PID field in ps output`);
  const processes: string[][] = [];
  for (const line of lines.slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (!pids.has(Number(fields[pidCol]))) continue;
    // The last column (command) may contain spaces: keep it whole.
    const row = fields.slice(0, titles.length - 1);
    row.push(fields.slice(titles.length - 1).join(' '));
    processes.push(row);
  }
  return { Titles: titles, Processes: processes };
}
