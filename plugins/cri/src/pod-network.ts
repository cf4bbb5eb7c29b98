/**
 * Pod networking through CNI: the pod's network namespace (pods.ts) gets interface eth0 on one
 * CNI network, run by network-cni's CniRunner (its result cache under `<data-root>/cri/cni`
 * makes the DEL after a berthd restart get what the ADD was given). Which network:
 *  - the first `*.conflist` (by name) of config `cniConfDir` — kubelet setups keep theirs in
 *    /etc/cni/net.d — or, without one,
 *  - berth's own: the reference `bridge` plugin on bridge `podBridge` (default berth-cri0) as
 *    the pods' gateway, `host-local` addresses from `podSubnet` (default 10.88.0.0/16, as
 *    containerd's default), ipMasq off (no NAT); a pod with host ports gets the reference
 *    `portmap` plugin last (DNAT of each host port to the pod, given as `portMappings`).
 * It does not go through network-cni's NetworkService: that is Docker's networks (names,
 * endpoints in container records), pods are not containers; the runner is the shared part.
 * ready() says whether the network is usable (root, the plugin binaries the list names).
 */
import { access, constants, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CniRunner, addressesOf, parseConfList, type CniConfList } from '@berth/plugin-network-cni';
import type { CniPortMapping } from './pods.js';

export const DEFAULT_POD_BRIDGE = 'berth-cri0';
export const DEFAULT_POD_SUBNET = '10.88.0.0/16';
export const DEFAULT_CNI_BIN_DIRS = ['/usr/lib/cni', '/opt/cni/bin'];
const IF_NAME = 'eth0';

export interface PodNetworkConfig {
  /** A directory of CNI conflists (kubelet's /etc/cni/net.d); absent or empty: berth's own bridge. */
  cniConfDir?: string;
  /** Directories of CNI plugin binaries, in order. */
  cniBinDirs?: string[];
  /** berth's own pod bridge and subnet (without a conflist from cniConfDir). */
  podBridge?: string;
  podSubnet?: string;
}

/** How a pod's network namespace is put on the network (tests without root pass their own). */
export interface PodNetwork {
  /** Usable? (a reason when not: Status answers NetworkReady false with it). */
  ready(): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** Attach the namespace, with the pod's host ports (`portMappings` capability); returns the pod's IP. */
  attach(podId: string, netns: string, k8s: { name: string; namespace: string; uid: string }, portMappings: CniPortMapping[]): Promise<string>;
  /** Release what attach took (idempotent, also after a restart). */
  detach(podId: string): Promise<void>;
}

/** berth's own pod network: a bridge + host-local list, and `portmap` for pods with host ports. */
export function defaultPodConfList(bridge: string, subnet: string, ipamDir: string, opts: { hostPorts?: boolean } = {}): CniConfList {
  const list: CniConfList = {
    cniVersion: '1.0.0',
    name: 'berth-cri',
    plugins: [
      {
        type: 'bridge',
        bridge,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: ipamDir },
      },
    ],
  };
  // The reference portmap: DNAT of each host port to the pod (snat on: hairpin and the host's 127.0.0.1 work too).
  if (opts.hostPorts) list.plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
  return list;
}

/** The list to run: the first conflist of `dir` by name (its portmap, if any, gets the host ports), else berth's own. */
export async function podConfList(cfg: PodNetworkConfig, ipamDir: string, opts: { hostPorts?: boolean } = {}): Promise<CniConfList> {
  if (cfg.cniConfDir) {
    let files: string[] = [];
    try {
      files = (await readdir(cfg.cniConfDir)).filter((f) => f.endsWith('.conflist')).sort();
    } catch {
      // no such directory: berth's own
    }
    if (files.length) return parseConfList(await readFile(join(cfg.cniConfDir, files[0]!), 'utf8'));
  }
  return defaultPodConfList(cfg.podBridge ?? DEFAULT_POD_BRIDGE, cfg.podSubnet ?? DEFAULT_POD_SUBNET, ipamDir, opts);
}

export function cniPodNetwork(cfg: PodNetworkConfig, dataRoot: string): PodNetwork {
  const binDirs = cfg.cniBinDirs ?? DEFAULT_CNI_BIN_DIRS;
  const root = join(dataRoot, 'cri', 'cni');
  const runner = new CniRunner({ binDirs, cacheDir: join(root, 'results') });
  const list = (opts: { hostPorts?: boolean } = {}) => podConfList(cfg, join(root, 'ipam'), opts);
  return {
    async ready() {
      if (process.getuid?.() !== 0) return { ok: false, reason: 'berthd is not root: no network namespaces or bridges' };
      let l: CniConfList;
      try {
        l = await list();
      } catch (err) {
        return { ok: false, reason: `the CNI configuration list of ${cfg.cniConfDir} is invalid: ${(err as Error).message}` };
      }
      const types = [...new Set([...l.plugins.map((p) => p.type), ...l.plugins.map((p) => (p.ipam as { type?: string } | undefined)?.type).filter((t): t is string => !!t)])];
      for (const t of types) {
        const found = await Promise.any(binDirs.map((d) => access(join(d, t), constants.X_OK))).then(() => true, () => false);
        if (!found) return { ok: false, reason: `the CNI plugin ${t} is not in ${binDirs.join(':')}` };
      }
      return { ok: true };
    },
    async attach(podId, netns, k8s, portMappings) {
      const args: [string, string][] = [
        ['IgnoreUnknown', '1'],
        ['K8S_POD_NAMESPACE', k8s.namespace],
        ['K8S_POD_NAME', k8s.name],
        ['K8S_POD_INFRA_CONTAINER_ID', podId],
        ['K8S_POD_UID', k8s.uid],
      ];
      const hostPorts = portMappings.length > 0;
      const result = await runner.add(await list({ hostPorts }), { containerId: podId, netns, ifName: IF_NAME, args, ...(hostPorts ? { capabilityArgs: { portMappings } } : {}) });
      return addressesOf(result, IF_NAME).IPAddress;
    },
    async detach(podId) {
      await runner.del({ containerId: podId, ifName: IF_NAME });
    },
  };
}
