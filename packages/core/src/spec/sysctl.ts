import { InvalidParameterError } from '../errors.js';
import type { OciSpec } from '../oci.js';
import type { SpecOpt } from './opts.js';

/** IPC-namespaced sysctls besides fs.mqueue.* (runc's validSysctlMap). */
export const IPC_SYSCTLS: readonly string[] = Object.freeze([
  'kernel.msgmax',
  'kernel.msgmnb',
  'kernel.msgmni',
  'kernel.sem',
  'kernel.shmall',
  'kernel.shmmax',
  'kernel.shmmni',
  'kernel.shm_rmid_forced',
]);

export interface SysctlNamespaces {
  /** The container has its own IPC namespace (IpcMode not host). */
  privateIpc: boolean;
  /** The container has its own network namespace (a new one or a joined non-host one). */
  privateNetwork: boolean;
  /** The container has its own UTS namespace. */
  privateUts: boolean;
}

/**
 * Refuses sysctls that would change the host, with runc's messages (runc checks this at
 * create; berth refuses before anything is started): only namespaced sysctls are allowed —
 * kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.* with a private IPC namespace; net.*
 * with a private network namespace; kernel.hostname / kernel.domainname with a private UTS
 * namespace.
 */
export function validateSysctls(sysctls: Record<string, string> | null | undefined, ns: SysctlNamespaces): void {
  for (const key of Object.keys(sysctls ?? {})) {
    if (IPC_SYSCTLS.includes(key) || key.startsWith('fs.mqueue.')) {
      if (!ns.privateIpc) throw new InvalidParameterError(`sysctl ${JSON.stringify(key)} is not allowed in the hosts ipc namespace`);
      continue;
    }
    if (key.startsWith('net.')) {
      if (!ns.privateNetwork) throw new InvalidParameterError(`sysctl ${JSON.stringify(key)} not allowed in host network namespace`);
      continue;
    }
    if (key === 'kernel.hostname' || key === 'kernel.domainname') {
      if (!ns.privateUts) throw new InvalidParameterError(`sysctl ${JSON.stringify(key)} is not allowed in the hosts uts namespace`);
      continue;
    }
    throw new InvalidParameterError(`sysctl ${JSON.stringify(key)} is not in a separate kernel namespace`);
  }
}

/** Merges sysctls into linux.sysctl (later keys win); an empty result removes the field. */
export function withSysctls(sysctls: Record<string, string> | null | undefined): SpecOpt {
  return (spec: OciSpec) => {
    const merged = { ...(spec.linux?.sysctl ?? {}), ...(sysctls ?? {}) };
    const linux = { ...(spec.linux ?? {}) };
    if (Object.keys(merged).length > 0) linux.sysctl = merged;
    else delete linux.sysctl;
    return { ...spec, linux };
  };
}

/**
 * The sysctls dockerd sets in a container with its own network namespace (unless the user
 * set them): unprivileged ports from 0 and unprivileged ICMP echo sockets for all groups.
 */
export function defaultNetworkSysctls(): Record<string, string> {
  return { 'net.ipv4.ip_unprivileged_port_start': '0', 'net.ipv4.ping_group_range': '0 2147483647' };
}
