/**
 * What the network e2e files share.
 *  - What a network e2e test changes on the host and must put back, even on failure: the
 *    bridges its berthd's networks made (the CNI bridge plugin makes them; `docker network rm`
 *    or berthd may not get to delete them), net.ipv4.ip_forward (the bridge plugin turns it on
 *    for a gateway bridge) and the nat table's chains CNI portmap makes for published ports
 *    (CNI-HOSTPORT-*, shared by every portmap user and never removed by it, and CNI-DN-* ones a
 *    berthd may have left): those that were not there before go, with the rules jumping to them
 *    (saveHostNetworkState). Whether the CNI plugins are there (cniSkipReason).
 *  - testNetworks(): a file's bridges and /24s — bridge names from the file's own prefix and the
 *    process id, subnets of the benchmarking range 198.18.0.0/15 claimed for the process (a
 *    claim file per /24 under the temp dir holding its pid; a dead process's claim is taken
 *    over), so that no two test processes on the machine use one subnet, whichever files they run.
 *  - useNetworkBerthd(): one berthd per describe block, on the file's own default bridge or none,
 *    the test image loaded; in afterAll the block's containers and networks removed
 *    (beforeCleanup), berthd cleaned up, its dir removed (also after a restart on it), the host
 *    put back as found and the subnets given up — also when a test failed.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { removeTestImageTarball, startBerthd, type Berthd, type StartOptions } from './berthd.js';

const FORWARD = '/proc/sys/net/ipv4/ip_forward';
/** Where Debian's containernetworking-plugins puts the CNI plugins. */
export const CNI_BIN = '/usr/lib/cni';

/** Why a network e2e test cannot run: `base` (berthd's reason), or a CNI plugin of `plugins` missing; null when it can. */
export function cniSkipReason(base: string | null, plugins: readonly string[] = ['bridge', 'host-local']): string | null {
  if (base) return base;
  for (const p of plugins) if (!fs.existsSync(`${CNI_BIN}/${p}`)) return `the CNI plugin ${p} is not in ${CNI_BIN} (apt-get install containernetworking-plugins)`;
  return null;
}
const PORTMAP_CHAIN = /^CNI-(HOSTPORT-|DN-)/;

/** `iptables -t nat -S` (nothing without iptables). */
function natRules(): string[] {
  try {
    return execFileSync('iptables', ['-w', '-t', 'nat', '-S'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** portmap's chains in the nat table now. */
export function portmapChains(): Set<string> {
  return new Set(natRules().flatMap((l) => (l.startsWith('-N ') && PORTMAP_CHAIN.test(l.slice(3)) ? [l.slice(3)] : [])));
}

/** Remove portmap's chains not in `keep`: the jumps to them from the built-in chains, then the chains. */
function removePortmapChains(keep: ReadonlySet<string>): void {
  const gone = [...portmapChains()].filter((c) => !keep.has(c));
  if (!gone.length) return;
  const ipt = (args: string[]) => {
    try {
      execFileSync('iptables', ['-w', '-t', 'nat', ...args], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  };
  for (const l of natRules()) {
    const m = /^-A (PREROUTING|OUTPUT|POSTROUTING) (.*) -j (\S+)$/.exec(l);
    // a quoted word (portmap's `--comment "CNI portfwd requiring masquerade"`) is one argument
    if (m && gone.includes(m[3])) ipt(['-D', m[1], ...(m[2].match(/"[^"]*"|\S+/g) ?? []).map((w) => w.replace(/^"(.*)"$/, '$1')), '-j', m[3]]);
  }
  for (const c of gone) ipt(['-F', c]);
  for (const c of gone) ipt(['-X', c]);
}

export interface HostNetworkState {
  /** Delete these bridges (those that exist) and write ip_forward back as it was. */
  restore(bridges: readonly string[]): void;
}

export function saveHostNetworkState(): HostNetworkState {
  const forward = fs.readFileSync(FORWARD, 'utf8');
  const chains = portmapChains();
  return {
    restore(bridges) {
      for (const b of bridges) {
        try {
          execFileSync('ip', ['link', 'del', b], { stdio: 'ignore' });
        } catch {
          // not made, or already gone
        }
      }
      fs.writeFileSync(FORWARD, forward);
      removePortmapChains(chains);
    },
  };
}

/** One of a file's test networks: its bridge and /24 (`net`: the first three octets, say `198.19.7`). */
export interface TestNet {
  readonly bridge: string;
  readonly net: string;
  /** `${net}.0/24` */
  readonly subnet: string;
  /** `${net}.1` */
  readonly gateway: string;
}

const CLAIMS = path.join(os.tmpdir(), 'berth-e2e-subnets');
/** The /24s of 198.18.0.0/15 this process holds. */
const claimed: string[] = [];
let exitHook = false;
/** How each network of a testNetworks() record gives the record's subnets up (releaseTestNetworks). */
const releasers = new WeakMap<TestNet, () => void>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The /24s of 198.18.0.0/15 the host has an address or route in now (a bridge another run left, say). */
function subnetsInUse(): Set<string> {
  const used = new Set<string>();
  for (const args of [['-4', '-o', 'addr', 'show'], ['-4', 'route', 'show', 'table', 'all']]) {
    let out = '';
    try {
      out = execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      continue;
    }
    for (const m of out.matchAll(/\b(198\.1[89]\.\d+)\.\d+(?:\/(\d+))?/g)) if (!m[2] || Number(m[2]) >= 24) used.add(m[1]);
  }
  return used;
}

/** Claim `count` free /24s of 198.18.0.0/15 for this process (given up by releaseSubnets() or at its exit). */
function claimSubnets(count: number): string[] {
  // shared by every user's test processes, as /tmp itself
  if (fs.mkdirSync(CLAIMS, { recursive: true })) fs.chmodSync(CLAIMS, 0o1777);
  if (!exitHook) process.once('exit', () => releaseSubnets());
  exitHook = true;
  const used = subnetsInUse();
  const out: string[] = [];
  for (let i = 0; i < 512 && out.length < count; i++) {
    const net = `198.${18 + (i >> 8)}.${i & 255}`;
    if (used.has(net)) continue;
    const file = path.join(CLAIMS, net);
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(fs.readFileSync(file, 'utf8'));
      if (owner === process.pid || alive(owner)) continue;
      // the claim of a process that is gone (killed before its afterAll): take it over
      fs.writeFileSync(file, String(process.pid));
    }
    claimed.push(net);
    out.push(net);
  }
  if (out.length < count) throw new Error(`no ${count} free /24s left in 198.18.0.0/15 (claims in ${CLAIMS})`);
  return out;
}

/** Give up subnets of this process (all of them by default). */
function releaseSubnets(nets: readonly string[] = [...claimed]): void {
  for (const net of nets) {
    if (!claimed.includes(net)) continue;
    claimed.splice(claimed.indexOf(net), 1);
    const file = path.join(CLAIMS, net);
    try {
      if (Number(fs.readFileSync(file, 'utf8')) === process.pid) fs.rmSync(file);
    } catch {
      // gone already
    }
  }
}

/**
 * A file's test networks, one per letter: bridge `${prefix}${letter}${pid % 100000}` (the prefix
 * two letters no other file uses: 15 characters at most), and a /24 claimed for this process when
 * `net`, `subnet` or `gateway` of any of them is first read (in a hook or a test: a skipped file
 * claims nothing).
 */
export function testNetworks<L extends string>(prefix: string, letters: readonly L[]): Record<L, TestNet> {
  let nets: string[] | undefined;
  const netOf = (i: number) => (nets ??= claimSubnets(letters.length))[i];
  const tag = process.pid % 100000;
  const record = Object.fromEntries(
    letters.map((l, i) => [
      l,
      {
        bridge: `${prefix}${l}${tag}`,
        get net() {
          return netOf(i);
        },
        get subnet() {
          return `${netOf(i)}.0/24`;
        },
        get gateway() {
          return `${netOf(i)}.1`;
        },
      },
    ]),
  ) as Record<L, TestNet>;
  const release = () => {
    if (nets) releaseSubnets(nets);
    nets = undefined;
  };
  for (const n of Object.values<TestNet>(record)) releasers.set(n, release);
  return record;
}

/**
 * Give up the subnets of these networks' testNetworks() records (in an afterAll: the process's
 * exit may never come for a test worker vitest ends with a signal; a claim left behind is taken
 * over once its process is gone).
 */
export function releaseTestNetworks(nets: Iterable<TestNet>): void {
  for (const n of nets) releasers.get(n)?.();
}

export interface NetworkBerthdOptions {
  /** Every network of the file (their bridges are deleted at the end, their subnets given up). */
  nets: Readonly<Record<string, TestNet>>;
  /** berthd's default bridge (`--bridge`, `--bip` its gateway); without it berthd has none. */
  defaultBridge?: TestNet;
  /** More of berthd's start options (flags after the bridge's, env, a dir), asked for in beforeAll. */
  start?: () => StartOptions;
  /** Runs before the cleanup (`docker rm -f` of the block's containers, `network rm`); its failure is ignored. */
  beforeCleanup?: (d: Berthd) => Promise<unknown>;
}

export interface NetworkBerthd {
  /** Start berthd again on the first one's dir and flags (after the test stopped or killed it); `set` is called with it. */
  startAgain(): Promise<Berthd>;
}

/**
 * One berthd on the file's networks for a describe block (call it inside the describe): started
 * in beforeAll with the host's network state saved first and the test image loaded; `set` gets
 * it (and each berthd startAgain() starts). In afterAll, also after a failure: beforeCleanup,
 * berthd cleaned up, its dir removed, the bridges deleted, ip_forward and portmap's chains put
 * back, the subnets given up, the test image tarball removed.
 */
export function useNetworkBerthd(set: (d: Berthd) => void, opts: NetworkBerthdOptions): NetworkBerthd {
  let d: Berthd | undefined;
  let dir: string | undefined;
  let host: HostNetworkState | undefined;
  let startOpts: StartOptions = {};
  const start = async (o: StartOptions) => {
    d = await startBerthd(o);
    set(d);
    return d;
  };
  beforeAll(async () => {
    host = saveHostNetworkState();
    const extra = opts.start?.() ?? {};
    const bridge = opts.defaultBridge ? ['--bridge', opts.defaultBridge.bridge, '--bip', `${opts.defaultBridge.gateway}/24`] : [];
    startOpts = { ...extra, args: [...bridge, ...(extra.args ?? [])] };
    dir = (await start(startOpts)).dir;
    await d!.loadTestImage();
  }, 120_000);
  afterAll(async () => {
    try {
      if (d && opts.beforeCleanup) await opts.beforeCleanup(d).catch(() => undefined);
      await d?.cleanup();
      // a berthd started on a given dir (a restart, the userns remap dir) leaves it to its creator
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    } finally {
      host?.restore(Object.values(opts.nets).map((n) => n.bridge));
      releaseTestNetworks(Object.values(opts.nets));
      removeTestImageTarball();
    }
  }, 120_000);
  return {
    startAgain: () => {
      if (!dir) throw new Error('berthd was never started (beforeAll failed?)');
      return start({ ...startOpts, dir });
    },
  };
}
