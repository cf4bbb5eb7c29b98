// Start/stop of the engines under test, each on its own socket, data root and exec root
// inside the bench work dir: the reference (Debian's containerd + dockerd) and berthd.
// Everything started here is registered with the Cleanup so that it is stopped even when a
// phase fails.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ApiClient } from './http.mjs';
import { alive, cmdline, findProcs } from './procs.mjs';

const sleep = (t) => new Promise((r) => setTimeout(r, t));

async function waitFor(what, fn, timeoutMs, child) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn().catch(() => false)) return;
    if (child && child.exitCode !== null) throw new Error(`${what}: process exited with ${child.exitCode} before it was ready`);
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms`);
    await sleep(100);
  }
}

async function pinged(api) {
  const r = await api.raw('GET', '/_ping', undefined, 2000);
  return r.status === 200;
}

function spawnLogged(cmd, args, logFile, env = process.env) {
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env, detached: false });
  fs.closeSync(fd);
  return child;
}

async function stopProcess(child, name, graceMs, log) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = await Promise.race([exited.then(() => 'exited'), sleep(graceMs).then(() => 'timeout')]);
  if (t === 'timeout') {
    log(`${name} did not stop within ${graceMs} ms after SIGTERM: SIGKILL`);
    child.kill('SIGKILL');
    await exited;
  }
}

/** Force-removes every container of an engine (8 in flight); errors are logged, not thrown. */
async function removeAll(api, log) {
  let list;
  try {
    list = await api.call('GET', '/containers/json?all=1');
  } catch (err) {
    log(`cleanup: cannot list containers: ${err.message}`);
    return;
  }
  let i = 0;
  const worker = async () => {
    while (i < list.length) {
      const c = list[i++];
      await api.call('DELETE', `/containers/${c.Id}?force=1`).catch((err) => log(`cleanup: remove ${c.Id.slice(0, 12)}: ${err.message}`));
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

export class Reference {
  /**
   * Debian's dockerd on its own containerd (own root/state/sockets), no bridge, no iptables.
   * `networkArgs` replace the network flags (bench/network.mjs: a default bridge and docker-proxy).
   */
  constructor(work, { networkArgs } = {}) {
    this.name = 'dockerd';
    this.networkArgs = networkArgs ?? ['--iptables=false', '--ip6tables=false', '--ip-forward=false', '--ip-masq=false', '--bridge=none', '--userland-proxy=false'];
    this.dir = path.join(work, 'docker');
    this.ctrDir = path.join(work, 'ctrd');
    this.sock = path.join(this.dir, 'docker.sock');
    this.ctrSock = path.join(this.ctrDir, 'c.sock');
    this.execRoot = path.join(this.dir, 'exec');
    this.api = new ApiClient(this.sock, '1.41');
  }

  async start(log) {
    for (const d of [this.dir, this.ctrDir, path.join(this.ctrDir, 'opt')]) fs.mkdirSync(d, { recursive: true });
    const cfg = path.join(this.ctrDir, 'config.toml');
    fs.writeFileSync(
      cfg,
      [
        'version = 2',
        `root = ${JSON.stringify(path.join(this.ctrDir, 'root'))}`,
        `state = ${JSON.stringify(path.join(this.ctrDir, 'state'))}`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
        '[grpc]',
        `  address = ${JSON.stringify(this.ctrSock)}`,
        '[ttrpc]',
        `  address = ${JSON.stringify(this.ctrSock + '.ttrpc')}`,
        '[debug]',
        '  address = ""',
        '  level = "warn"',
        '[metrics]',
        '  address = ""',
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = ${JSON.stringify(path.join(this.ctrDir, 'opt'))}`,
        '',
      ].join('\n'),
    );
    this.containerd = spawnLogged('containerd', ['--config', cfg], path.join(this.ctrDir, 'containerd.log'));
    await waitFor('containerd', async () => fs.existsSync(this.ctrSock), 30_000, this.containerd);
    const daemonJson = path.join(this.dir, 'daemon.json');
    fs.writeFileSync(daemonJson, '{}\n');
    const args = [
      '--containerd', this.ctrSock,
      '--data-root', path.join(this.dir, 'data'),
      '--exec-root', this.execRoot,
      '--pidfile', path.join(this.dir, 'dockerd.pid'),
      '--host', `unix://${this.sock}`,
      '--config-file', daemonJson,
      ...this.networkArgs,
      '--log-level', 'warn',
    ];
    this.dockerd = spawnLogged('dockerd', args, path.join(this.dir, 'dockerd.log'));
    await waitFor('dockerd', () => pinged(this.api), 60_000, this.dockerd);
    const info = await this.api.call('GET', '/info');
    log(`dockerd ${info.ServerVersion} up (storage ${info.Driver}, cgroup ${info.CgroupDriver} v${info.CgroupVersion ?? '1'}), containerd pid ${this.containerd.pid}`);
    this.version = info.ServerVersion;
    this.storage = info.Driver;
  }

  /** Processes that count as the engine's memory: dockerd, containerd, the shims of our containerd. */
  memoryGroups() {
    const shims = findProcs((a) => a[0].endsWith('containerd-shim-runc-v2') && a.includes(this.ctrSock));
    return { dockerd: [this.dockerd.pid], containerd: [this.containerd.pid], 'containerd-shim-runc-v2': shims };
  }

  mainPid() {
    return this.dockerd?.pid;
  }

  runcRoots() {
    return [path.join(this.execRoot, 'runtime-runc', 'moby')];
  }

  async stop(log) {
    if (this.dockerd && this.dockerd.exitCode === null) await removeAll(this.api, log);
    this.api.close();
    await stopProcess(this.dockerd, 'dockerd', 30_000, log);
    await stopProcess(this.containerd, 'containerd', 15_000, log);
    // Shims outlive containerd by design; ours are the ones given our containerd address.
    for (const pid of findProcs((a) => a[0].endsWith('containerd-shim-runc-v2') && a.includes(this.ctrSock))) {
      log(`cleanup: killing leftover shim ${pid}`);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

export class Berth {
  /** `daemonJson`: berthd's daemon.json keys (e.g. "userns-remap"). */
  constructor(work, repo, { profileDir = null, daemonJson = {} } = {}) {
    this.name = 'berth';
    this.daemonJsonKeys = daemonJson;
    this.repo = repo;
    this.dir = path.join(work, 'berth');
    this.sock = path.join(this.dir, 'berth.sock');
    this.execRoot = path.join(this.dir, 'exec');
    this.rootfsDir = path.join(this.dir, 'rootfs');
    this.profileDir = profileDir;
    this.api = new ApiClient(this.sock, '1.41');
  }

  async start(log) {
    fs.mkdirSync(this.rootfsDir, { recursive: true });
    // berthd makes its default bridge as dockerd makes docker0 (and keeps it, as dockerd): a
    // bridge that was not there before the bench is removed by stop()
    this.bridge = this.daemonJsonKeys.bridge ?? 'berth0';
    this.bridgeExisted = fs.existsSync(`/sys/class/net/${this.bridge}`);
    const daemonJson = path.join(this.dir, 'daemon.json');
    fs.writeFileSync(daemonJson, `${JSON.stringify(this.daemonJsonKeys)}\n`);
    const node = [];
    if (this.profileDir) node.push('--cpu-prof', `--cpu-prof-dir=${this.profileDir}`, '--cpu-prof-name=berthd.cpuprofile');
    const args = [
      ...node,
      path.join(this.repo, 'packages/cli/bin/berthd'),
      '--host', `unix://${this.sock}`,
      '--data-root', path.join(this.dir, 'data'),
      '--exec-root', this.execRoot,
      '--pidfile', path.join(this.dir, 'berthd.pid'),
      '--config-file', daemonJson,
      '--berth-rootfs-dir', this.rootfsDir,
      '--log-level', 'warn',
    ];
    this.berthd = spawnLogged(process.execPath, args, path.join(this.dir, 'berthd.log'));
    await waitFor('berthd', () => pinged(this.api), 60_000, this.berthd);
    const v = await this.api.call('GET', '/version');
    this.version = `${v.Version} (API ${v.ApiVersion})`;
    log(`berthd ${this.version} up, pid ${this.berthd.pid}${this.profileDir ? ' (node --cpu-prof)' : ''}`);
  }

  /** berthd plus the conmon monitors of its containers (found by our exec root in argv). */
  memoryGroups() {
    const conmons = findProcs((a) => path.basename(a[0]) === 'conmon' && a.some((x) => x.startsWith(this.execRoot)));
    return { berthd: [this.berthd.pid], conmon: conmons };
  }

  mainPid() {
    return this.berthd?.pid;
  }

  runcRoots() {
    return findRuncRoots(this.execRoot);
  }

  async stop(log) {
    if (this.berthd && this.berthd.exitCode === null) await removeAll(this.api, log);
    this.api.close();
    await stopProcess(this.berthd, 'berthd', 30_000, log);
    for (const pid of findProcs((a) => path.basename(a[0]) === 'conmon' && a.some((x) => x.startsWith(this.execRoot)))) {
      log(`cleanup: killing leftover conmon ${pid}`);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (this.bridge && this.bridge !== 'none' && !this.bridgeExisted && fs.existsSync(`/sys/class/net/${this.bridge}`)) {
      log(`cleanup: removing the bridge ${this.bridge} berthd made`);
      try {
        execFileSync('ip', ['link', 'del', this.bridge], { stdio: 'ignore' });
      } catch {
        /* gone meanwhile */
      }
    }
  }
}

/** Every runc state root below dir (a directory holding <id>/state.json entries). */
export function findRuncRoots(dir) {
  const roots = [];
  const walk = (d, depth) => {
    if (depth > 5) return;
    let ents;
    try {
      ents = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      if (!e.isDirectory()) continue;
      const p = path.join(d, e.name);
      if (fs.existsSync(path.join(p, 'state.json'))) {
        roots.push(d);
        return;
      }
      walk(p, depth + 1);
    }
  };
  walk(dir, 0);
  return [...new Set(roots)];
}

/** Deletes every container runc still knows under `root` (leftovers after a crash). */
export function runcSweep(root, log) {
  if (!fs.existsSync(root)) return;
  let ids = [];
  try {
    ids = execFileSync('runc', ['--root', root, 'list', '-q'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean);
  } catch {
    return;
  }
  for (const id of ids) {
    log(`cleanup: runc delete -f ${id} (root ${root})`);
    try {
      execFileSync('runc', ['--root', root, 'delete', '-f', id], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
}

/** Unmounts everything mounted below `dir`, deepest first (lazy as a last resort). */
export function unmountBelow(dir, log) {
  const prefix = dir.endsWith('/') ? dir : dir + '/';
  for (let pass = 0; pass < 3; pass++) {
    const points = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((p) => p && (p + '/').startsWith(prefix))
      .map((p) => p.replace(/\\040/g, ' '))
      .sort((a, b) => b.length - a.length);
    if (!points.length) return;
    for (const p of points) {
      try {
        execFileSync('umount', [pass < 2 ? p : '-l', ...(pass < 2 ? [] : [p])], { stdio: 'ignore' });
      } catch {
        if (pass === 2) log(`cleanup: could not unmount ${p}`);
      }
    }
  }
}

export { alive, cmdline };
