/**
 * How create makes a container record: dockerd's HostConfig defaults, the empty
 * NetworkSettings, the record itself (state `created`, Path/Args, Docker's empty strings)
 * and inspect's Mounts from Binds and Mounts. Pure functions; tests build records with them.
 */
import { parseUserMounts } from './spec/mounts.js';
import { initialState } from './state.js';
import type { ContainerRecord, EndpointSettings, HostConfig, MountPoint, NetworkSettings } from './types.js';

/** Label that points a container at a plain rootfs directory (berth-only). */
export const ROOTFS_LABEL = 'io.berth.rootfs';

/** The HostConfig fields create always stores (dockerd's defaults). */
export type StoredHostConfig = HostConfig & Required<Pick<HostConfig, 'Runtime' | 'NetworkMode' | 'LogConfig' | 'RestartPolicy'>>;

/**
 * HostConfig as create stores it: `Runtime` = the default runtime, `NetworkMode` = bridge,
 * `LogConfig` = json-file, `RestartPolicy` = no where they are empty. Pure (no validation).
 */
export function withHostConfigDefaults(hc: HostConfig, defaultRuntime: string): StoredHostConfig {
  return {
    ...hc,
    Runtime: hc.Runtime || defaultRuntime,
    NetworkMode: hc.NetworkMode || 'bridge',
    LogConfig: { Type: hc.LogConfig?.Type || 'json-file', Config: hc.LogConfig?.Config ?? {} },
    RestartPolicy: { Name: hc.RestartPolicy?.Name || 'no', MaximumRetryCount: hc.RestartPolicy?.MaximumRetryCount ?? 0 },
  };
}

/** A container's NetworkSettings before any networking ran (no sandbox, no ports). */
export function newNetworkSettings(networks: Record<string, EndpointSettings> = {}): NetworkSettings {
  return { Bridge: '', SandboxID: '', SandboxKey: '', Ports: {}, Networks: networks };
}

/**
 * After its network is released (exit, failed start, remove, found dead at restore): what only a
 * running sandbox has goes, as dockerd's releaseNetwork/cleanOperationalData — SandboxID,
 * SandboxKey, Ports, the legacy container-wide addresses and each endpoint's EndpointID,
 * Gateway and addresses. What the container asked for stays (NetworkID, IPAMConfig, Aliases,
 * Links, DriverOpts, DNSNames, MacAddress: the next start asks for it again).
 */
export function clearNetworkOperationalData(ns: NetworkSettings): void {
  ns.SandboxID = '';
  ns.SandboxKey = '';
  ns.Ports = {};
  for (const k of ['EndpointID', 'Gateway', 'IPAddress', 'IPv6Gateway', 'GlobalIPv6Address'] as const) if (ns[k] !== undefined) ns[k] = '';
  for (const k of ['IPPrefixLen', 'GlobalIPv6PrefixLen'] as const) if (ns[k] !== undefined) ns[k] = 0;
  for (const e of Object.values(ns.Networks ?? {})) {
    for (const k of ['EndpointID', 'Gateway', 'IPAddress', 'IPv6Gateway', 'GlobalIPv6Address'] as const) if (e[k] !== undefined) e[k] = '';
    for (const k of ['IPPrefixLen', 'GlobalIPv6PrefixLen'] as const) if (e[k] !== undefined) e[k] = 0;
  }
}

export type NewContainerFields = Pick<ContainerRecord, 'ID' | 'Name' | 'Created' | 'Config' | 'HostConfig'> & Partial<ContainerRecord>;

/**
 * A record as create makes it, before it is stored: state `created` ({@link initialState}),
 * `Path`/`Args` from Entrypoint + Cmd, NetworkSettings with one empty endpoint for
 * `HostConfig.NetworkMode` (none for `container:<id>` or an empty mode), Docker's empty
 * strings elsewhere. Any field given in `fields` wins. Tests build their records with it too.
 */
export function newContainerRecord(fields: NewContainerFields): ContainerRecord {
  const { ID, Name, Created, Config, HostConfig } = fields;
  const argv = [...(Config.Entrypoint ?? []), ...(Config.Cmd ?? [])];
  const mode = HostConfig.NetworkMode;
  const rec: ContainerRecord = {
    ID,
    Name,
    Created,
    Path: argv[0] ?? '',
    Args: argv.slice(1),
    Config,
    HostConfig,
    State: initialState(),
    Image: '',
    NetworkSettings: newNetworkSettings(mode && !mode.startsWith('container:') ? { [mode]: {} } : {}),
    ResolvConfPath: '',
    HostnamePath: '',
    HostsPath: '',
    LogPath: '',
    RestartCount: 0,
    Driver: '',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: null,
    Mounts: [],
  };
  return Object.assign(rec, fields);
}

/** `docker inspect`'s Mounts for Binds and Mounts (tmpfs from HostConfig.Tmpfs are not listed, as in dockerd); volumes unresolved. */
export function mountPointsOf(hc: HostConfig): MountPoint[] {
  const parsed = parseUserMounts(hc);
  const binds = hc.Binds ?? [];
  let bindIdx = 0;
  const out: MountPoint[] = [];
  for (const m of parsed) {
    if (m.origin === 'Tmpfs') continue;
    let mode = '';
    if (m.origin === 'Binds') {
      const parts = (binds[bindIdx++] ?? '').split(':');
      mode = parts.length === 3 ? parts[2]! : '';
    }
    // A volume's Name is its name ('' = anonymous); its Source and Driver are filled in by the
    // volume plugin that resolves it at create (an empty Source = unresolved, see create.ts).
    out.push({
      Type: m.type,
      ...(m.type === 'volume' ? { Name: m.source } : {}),
      Source: m.type === 'volume' ? '' : m.source,
      Destination: m.destination,
      Mode: mode,
      RW: !m.readOnly,
      Propagation: m.type === 'bind' ? m.propagation : '',
    });
  }
  return out;
}
