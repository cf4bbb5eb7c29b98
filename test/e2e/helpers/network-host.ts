/**
 * What a network e2e test changes on the host and must put back, even on failure: the bridges
 * its berthd's networks made (the CNI bridge plugin makes them; `docker network rm` or berthd
 * may not get to delete them), net.ipv4.ip_forward (the bridge plugin turns it on for a
 * gateway bridge) and the nat table's chains CNI portmap makes for published ports
 * (CNI-HOSTPORT-*, shared by every portmap user and never removed by it, and CNI-DN-* ones a
 * berthd may have left): those that were not there before go, with the rules jumping to them.
 * Take the state in beforeAll, restore it in afterAll. Also: whether the CNI plugins are there (cniSkipReason).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

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
