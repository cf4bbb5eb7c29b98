/**
 * Legacy container links (`HostConfig.Links`, `docker run --link name:alias`), as dockerd
 * makes them on its default bridge network:
 *  - at create, every link names an existing container (else 400 "could not get container
 *    for …"), not one on the host's network; the parent may not use host or container:
 *    networking; a link to a `container:<id>` container is a link to that container;
 *  - at start, every linked container runs (else "Cannot link to a non running container:
 *    /db AS /web/db") and the parent's environment gets dockerd's link variables
 *    (`DB_PORT`, `DB_PORT_5432_TCP*`, `DB_NAME`, `DB_ENV_*`), its /etc/hosts a line
 *    "<ip>\t<alias> <hostname> [<name>]" per link whose container has an address
 *    (network-basic writes it: {@link linksOfStart});
 *  - inspect shows them as dockerd does, "/db:/web/db"; `DELETE /containers/web/db?link=1`
 *    removes one.
 * The record keeps each link as "<child ID>:<alias>", so a renamed linked container stays
 * linked (the parsing accepts the name forms, and dockerd's "/db:/web/db", too).
 */
import { ConflictError, InvalidParameterError, errorKind, noSuchContainer } from './errors.js';
import type { StartContext } from './hooks.js';
import type { ContainerRecord } from './types.js';

/** One `HostConfig.Links` entry, parsed: the linked container's name (or ID) and the alias. */
export interface LinkSpec {
  name: string;
  alias: string;
}

/** A link resolved at start: what the environment and the hosts file need. */
export interface LinkedContainer {
  /** The link's full name, "/<parent>/<alias>" (the value of `<ALIAS>_NAME`). */
  name: string;
  alias: string;
  /** The linked container's ID and name ("/db"). */
  childId: string;
  childName: string;
  /** Its hostname (Config.Hostname, else the first 12 hex of its ID, as network-basic writes it). */
  hostname: string;
  /** Its address on the network the link uses ('' while berth gives containers none). */
  ip: string;
  /** dockerd's link environment variables for this link. */
  env: string[];
}

/** What links need of the container service. */
export interface LinkContainers {
  /** The live record for a full ID, a name or a unique ID prefix (NotFound otherwise). */
  liveRecord(idOrName: string): ContainerRecord;
  /** Persist a change to a record. */
  save(rec: ContainerRecord): Promise<void>;
}

/** Network modes on which dockerd applies links (its default bridge). */
const BRIDGE_MODES = new Set(['', 'default', 'bridge']);
const CONFLICT_HOST = "conflicting options: host type networking can't be used with links. This would result in undefined behavior";
const CONFLICT_CONTAINER = "conflicting options: container type network can't be used with links. This would result in undefined behavior";

/** dockerd's ParseLink: "name:alias", "name" (alias = name) or inspect's "/name:/parent/alias". */
export function parseLink(raw: string): LinkSpec {
  if (typeof raw !== 'string' || raw === '') throw new InvalidParameterError('empty string specified for links');
  const parts = raw.split(':');
  if (parts.length > 2) throw new InvalidParameterError(`bad format for links: ${raw}`);
  const [name, alias] = parts as [string, string | undefined];
  if (alias === undefined) return { name, alias: name };
  if (name.startsWith('/')) return { name: name.slice(1), alias: alias.slice(alias.lastIndexOf('/') + 1) };
  return { name, alias };
}

interface PortProto {
  port: number;
  proto: string;
}

function parsePort(key: string): PortProto | null {
  const [p = '', proto = 'tcp'] = key.split('/');
  const port = Number(p);
  return Number.isInteger(port) && port > 0 ? { port, proto: proto.toLowerCase() } : null;
}

/** tcp ports first, then the others by protocol name; by number within a protocol (dockerd's order). */
function byTcpFirst(a: PortProto, b: PortProto): number {
  if (a.proto === b.proto) return a.port - b.port;
  if (a.proto === 'tcp') return -1;
  if (b.proto === 'tcp') return 1;
  return a.proto < b.proto ? -1 : 1;
}

/**
 * The environment variables dockerd gives a container for one link (daemon/links ToEnv):
 * `<ALIAS>_PORT` (the first port), per exposed port `<ALIAS>_PORT_<n>_<PROTO>` with `_ADDR`,
 * `_PORT`, `_PROTO`, runs of consecutive ports as `_START`/`_PORT_START`/`_END`/`_PORT_END`,
 * `<ALIAS>_NAME`, and the linked container's Config.Env as `<ALIAS>_ENV_<name>` (without
 * HOME and PATH). ALIAS is the alias in upper case with `-` as `_`.
 */
export function linkEnv(o: { name: string; childIp: string; childEnv?: readonly string[] | null; exposedPorts?: readonly string[] }): string[] {
  const alias = o.name.slice(o.name.lastIndexOf('/') + 1).toUpperCase().replaceAll('-', '_');
  const ports = (o.exposedPorts ?? []).map(parsePort).filter((p): p is PortProto => p !== null).sort(byTcpFirst);
  const env: string[] = [];
  const prefixOf = (p: PortProto) => `${alias}_PORT_${p.port}_${p.proto.toUpperCase()}`;
  const url = (p: PortProto) => `${p.proto}://${o.childIp}:${p.port}`;
  let start: PortProto | undefined;
  let end: PortProto | undefined;
  ports.forEach((p, i) => {
    if (i === 0) {
      start = end = p;
      env.push(`${alias}_PORT=${url(p)}`);
    }
    const prefix = prefixOf(p);
    env.push(`${prefix}=${url(p)}`, `${prefix}_ADDR=${o.childIp}`, `${prefix}_PORT=${p.port}`, `${prefix}_PROTO=${p.proto}`);
    // a run of consecutive ports of one protocol is also announced as a range
    if (p.port === end!.port + 1 && p.proto === end!.proto) {
      end = p;
      if (i < ports.length - 1) return;
    }
    if (end !== start) {
      const rp = prefixOf(start!);
      env.push(`${rp}_START=${url(start!)}`, `${rp}_PORT_START=${start!.port}`, `${rp}_END=${url(end!)}`, `${rp}_PORT_END=${end!.port}`);
    }
    start = end = p;
  });
  env.push(`${alias}_NAME=${o.name}`);
  for (const kv of o.childEnv ?? []) {
    const eq = kv.indexOf('=');
    if (eq < 0) continue;
    const key = kv.slice(0, eq);
    if (key === 'HOME' || key === 'PATH') continue;
    env.push(`${alias}_ENV_${key}=${kv.slice(eq + 1)}`);
  }
  return env;
}

function modeOf(rec: ContainerRecord): string {
  return rec.HostConfig?.NetworkMode ?? '';
}

/** The container whose network a container uses: itself, or the end of its `container:` chain. */
function networkOwner(rec: ContainerRecord, containers: LinkContainers): ContainerRecord {
  let cur = rec;
  const seen = new Set<string>();
  while (modeOf(cur).startsWith('container:') && !seen.has(cur.ID)) {
    seen.add(cur.ID);
    cur = containers.liveRecord(modeOf(cur).slice('container:'.length));
  }
  return cur;
}

/** The address of a container on the network links use (dockerd: its default bridge endpoint). */
function bridgeAddress(rec: ContainerRecord): string {
  const nets = rec.NetworkSettings?.Networks ?? {};
  return nets.bridge?.IPAddress || nets.default?.IPAddress || rec.NetworkSettings?.IPAddress || '';
}

/**
 * Create: check the links as dockerd's registerLinks does and store each as
 * "<child ID>:<alias>" (a second link with an alias already used is dropped, as dockerd does).
 */
export function registerLinks(parent: ContainerRecord, containers: LinkContainers): void {
  const links = parent.HostConfig?.Links ?? [];
  if (links.length === 0) return;
  const mode = modeOf(parent);
  if (mode === 'host') throw new InvalidParameterError(CONFLICT_HOST);
  if (mode.startsWith('container:')) throw new InvalidParameterError(CONFLICT_CONTAINER);
  const stored: string[] = [];
  const aliases = new Set<string>();
  for (const raw of links) {
    const { name, alias } = parseLink(raw);
    let child: ContainerRecord;
    try {
      child = networkOwner(containers.liveRecord(name), containers);
    } catch (err) {
      // moby#39823: a missing container is an invalid parameter, not a missing image
      if (errorKind(err) === 'NotFound') throw new InvalidParameterError(`could not get container for ${name}: ${(err as Error).message}`, { cause: err });
      throw err;
    }
    if (modeOf(child) === 'host') throw new InvalidParameterError(CONFLICT_HOST);
    if (aliases.has(alias)) continue;
    aliases.add(alias);
    stored.push(`${child.ID}:${alias}`);
  }
  parent.HostConfig.Links = stored;
}

/** The link's full name: "/<parent name>/<alias>". */
function fullName(parent: ContainerRecord, alias: string): string {
  return `${parent.Name.startsWith('/') ? parent.Name : `/${parent.Name}`}/${alias}`;
}

/**
 * Start: the links of a container on a bridge-like network, each to a running container
 * (ConflictError otherwise, with dockerd's words), with its environment variables. A
 * container on another network gets none (dockerd applies links on its bridge only).
 */
export function resolveLinks(parent: ContainerRecord, containers: LinkContainers): LinkedContainer[] {
  if (!BRIDGE_MODES.has(modeOf(parent))) return [];
  return (parent.HostConfig?.Links ?? []).map((raw) => {
    const { name, alias } = parseLink(raw);
    const linkName = fullName(parent, alias);
    let child: ContainerRecord;
    try {
      child = networkOwner(containers.liveRecord(name), containers);
    } catch (err) {
      if (errorKind(err) !== 'NotFound') throw err;
      throw new ConflictError(`Cannot link to a non running container: /${name} AS ${linkName}`, { cause: err });
    }
    if (!child.State.Running) throw new ConflictError(`Cannot link to a non running container: ${child.Name} AS ${linkName}`);
    if (!BRIDGE_MODES.has(modeOf(child))) throw new ConflictError(`container ${child.ID} not attached to default bridge network`);
    const ip = bridgeAddress(child);
    return {
      name: linkName,
      alias,
      childId: child.ID,
      childName: child.Name,
      hostname: child.Config.Hostname || child.ID.slice(0, 12),
      ip,
      env: linkEnv({ name: linkName, childIp: ip, childEnv: child.Config.Env, exposedPorts: Object.keys(child.Config.ExposedPorts ?? {}) }),
    };
  });
}

/** `HostConfig.Links` as inspect shows it: "/db:/web/db" per link whose container still exists; null when none. */
export function inspectLinks(parent: ContainerRecord, containers: LinkContainers): string[] | null {
  const out: string[] = [];
  for (const raw of parent.HostConfig?.Links ?? []) {
    try {
      const { name, alias } = parseLink(raw);
      out.push(`${containers.liveRecord(name).Name}:${fullName(parent, alias)}`);
    } catch {
      // the linked container is gone: nothing to show
    }
  }
  return out.length ? out.sort() : null;
}

/**
 * `DELETE /containers/<parent>/<alias>?link=1`: remove that link only (saved, so it stays
 * removed after a restart). A name without a parent is dockerd's conflict; a link that does
 * not exist is "No such container".
 */
export async function removeLink(containers: LinkContainers, name: string): Promise<void> {
  const full = name.startsWith('/') ? name : `/${name}`;
  const slash = full.lastIndexOf('/');
  if (slash === 0) {
    // A container reference (full ID, ID prefix or name) is resolved as dockerd's GetContainer
    // does, before it refuses: NotFound names the reference as the client gave it.
    containers.liveRecord(name);
    throw new ConflictError('Conflict, cannot remove the default link name of the container');
  }
  const alias = full.slice(slash + 1);
  let parent: ContainerRecord;
  try {
    parent = containers.liveRecord(full.slice(0, slash));
  } catch (err) {
    if (errorKind(err) === 'NotFound') throw noSuchContainer(name);
    throw err;
  }
  const links = parent.HostConfig.Links ?? [];
  const kept = links.filter((raw) => parseLink(raw).alias !== alias);
  if (kept.length === links.length) throw noSuchContainer(name);
  parent.HostConfig.Links = kept.length ? kept : null;
  await containers.save(parent);
}

/**
 * Run `start` for each container once the starts of the containers it links to (among
 * `records`) are done, as dockerd's restore waits for a container's children: the restart
 * policies at boot would otherwise start a parent before its linked container runs.
 * `start` should not throw (log instead); the others go on either way.
 */
export async function startAfterLinkTargets(records: readonly ContainerRecord[], start: (rec: ContainerRecord) => Promise<void>): Promise<void> {
  const find = (ref: string) => records.find((r) => r.ID === ref || r.Name === `/${ref}` || r.Name === ref);
  const runs = new Map<string, Promise<void>>();
  const run = (rec: ContainerRecord, path: ReadonlySet<string>): Promise<void> => {
    const known = runs.get(rec.ID);
    if (known) return known;
    const targets = (rec.HostConfig?.Links ?? [])
      .map((raw) => {
        try {
          return find(parseLink(raw).name);
        } catch {
          return undefined;
        }
      })
      .filter((r): r is ContainerRecord => r !== undefined && r.ID !== rec.ID && !path.has(r.ID));
    const inner = new Set([...path, rec.ID]);
    const p = Promise.all(targets.map((t) => run(t, inner).catch(() => undefined))).then(() => start(rec));
    runs.set(rec.ID, p);
    return p;
  };
  await Promise.all(records.map((r) => run(r, new Set())));
}

const startLinks = new WeakMap<StartContext, readonly LinkedContainer[]>();

/** The links resolved for this start (for the networking taps that write /etc/hosts). */
export function linksOfStart(ctx: StartContext): readonly LinkedContainer[] {
  return startLinks.get(ctx) ?? [];
}

/** Start, before the networking hook: resolve the container's links for this start (see resolveLinks). */
export function prepareStartLinks(ctx: StartContext, containers: LinkContainers): void {
  startLinks.set(ctx, resolveLinks(ctx.container, containers));
}
