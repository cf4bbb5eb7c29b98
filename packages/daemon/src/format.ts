/**
 * Presentation helpers that reproduce dockerd's strings and shapes (docker ps Status, stdcopy
 * frames, NetworkSettings as inspect shows it).
 */
import type { ContainerRecord, ContainerState, EndpointSettings, NetworkSettings } from '@berth/core';
import { ZERO_TIME } from '@berth/core';
import { versionLessThan } from './version.js';

/** go-units HumanDuration, as `docker ps` prints it. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const minutes = Math.floor(ms / 60000);
  const hours = Math.round(ms / 3600000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(hours / 24 / 365)} years`;
}

function since(t: string, now: number): string {
  return humanDuration(Math.max(0, now - Date.parse(t)));
}

/** dockerd's State.String(): the Status column of `docker ps`. */
export function stateString(s: ContainerState, now = Date.now()): string {
  if (s.Running) {
    if (s.Paused) return `Up ${since(s.StartedAt, now)} (Paused)`;
    if (s.Restarting) return `Restarting (${s.ExitCode}) ${since(s.FinishedAt, now)} ago`;
    const health = s.Health && s.Health.Status !== 'none' ? ` (${s.Health.Status === 'starting' ? 'health: starting' : s.Health.Status})` : '';
    return `Up ${since(s.StartedAt, now)}${health}`;
  }
  if (s.Status === 'removing') return 'Removal In Progress';
  if (s.Dead || s.Status === 'dead') return 'Dead';
  if (s.StartedAt === ZERO_TIME || s.Status === 'created') return 'Created';
  if (s.FinishedAt === ZERO_TIME) return '';
  return `Exited (${s.ExitCode}) ${since(s.FinishedAt, now)} ago`;
}

/** The State column of `docker ps` (ContainerSummary.State). */
export function stateName(s: ContainerState): ContainerState['Status'] {
  if (s.Running && s.Paused) return 'paused';
  if (s.Running && s.Restarting) return 'restarting';
  if (s.Running) return 'running';
  return s.Status;
}

/** stdcopy: the 8-byte header of Docker's multiplexed streams (0 stdin, 1 stdout, 2 stderr). */
export function frame(stream: 0 | 1 | 2, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

export function commandLine(c: ContainerRecord): string {
  return [c.Path, ...(c.Args ?? [])].filter((x) => x !== '').join(' ');
}

/** Unix seconds of an RFC 3339 time. */
export function unixSeconds(t: string): number {
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? 0 : Math.floor(ms / 1000);
}

/** Docker's detach keys: "ctrl-p,ctrl-q" → bytes; invalid → null with the error message thrown by the caller. */
export function parseDetachKeys(spec: string): Buffer {
  const out: number[] = [];
  for (const part of spec.split(',')) {
    const p = part.trim();
    if (p.length === 1) {
      out.push(p.charCodeAt(0));
      continue;
    }
    const m = /^ctrl-(.)$/i.exec(p);
    if (!m) throw new Error(`Unknown character: '${p}'`);
    const ch = m[1].toLowerCase();
    let code: number;
    if (ch >= 'a' && ch <= 'z') code = ch.charCodeAt(0) - 96;
    else if (ch === '@') code = 0;
    else if (ch === '[') code = 27;
    else if (ch === '\\') code = 28;
    else if (ch === ']') code = 29;
    else if (ch === '^') code = 30;
    else if (ch === '_') code = 31;
    else throw new Error(`Unknown character: '${p}'`);
    out.push(code);
  }
  return Buffer.from(out);
}

export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

/**
 * An endpoint as dockerd shows it in inspect and in `docker ps`: the address keys present and
 * empty when unset ("" for addresses and MacAddress, 0, null) — e.g. on the none and host
 * networks. Unset lists (Links, Aliases, DNSNames) stay out: dockerd sends null there, which
 * the swagger does not allow.
 */
export function endpointBody(e: EndpointSettings | undefined): Record<string, unknown> {
  return {
    IPAMConfig: null,
    MacAddress: '',
    DriverOpts: null,
    GwPriority: 0,
    NetworkID: '',
    EndpointID: '',
    Gateway: '',
    IPAddress: '',
    IPPrefixLen: 0,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    ...e,
  };
}

/** The container-wide fields that API 1.52 dropped from NetworkSettings (deprecated since 1.21). */
const LEGACY_NETWORK_FIELDS = {
  Bridge: '',
  HairpinMode: false,
  LinkLocalIPv6Address: '',
  LinkLocalIPv6PrefixLen: 0,
  SecondaryIPAddresses: null,
  SecondaryIPv6Addresses: null,
  EndpointID: '',
  Gateway: '',
  GlobalIPv6Address: '',
  GlobalIPv6PrefixLen: 0,
  IPAddress: '',
  IPPrefixLen: 0,
  IPv6Gateway: '',
  MacAddress: '',
};

/**
 * NetworkSettings of GET /containers/{id}/json for an API version: every endpoint with all of
 * its keys; before 1.52 also the container-wide legacy fields (MacAddress "" and so on when no
 * network gave one, as for none and host); from 1.52 without them, as dockerd.
 */
export function networkSettingsBody(ns: NetworkSettings | undefined, version: string): Record<string, unknown> {
  const networks = Object.fromEntries(Object.entries(ns?.Networks ?? {}).map(([name, e]) => [name, endpointBody(e)]));
  const base = { SandboxID: ns?.SandboxID ?? '', SandboxKey: ns?.SandboxKey ?? '', Ports: ns?.Ports ?? {} };
  if (!versionLessThan(version, '1.52')) return { ...base, Networks: networks };
  const legacy: Record<string, unknown> = { ...LEGACY_NETWORK_FIELDS };
  for (const k of Object.keys(legacy)) {
    const v = (ns as Record<string, unknown> | undefined)?.[k];
    if (v !== undefined) legacy[k] = v;
  }
  return { Bridge: legacy.Bridge, ...base, ...legacy, Networks: networks };
}
