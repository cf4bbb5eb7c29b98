/**
 * berthd's command line and daemon.json, merged as dockerd does: flags and file keys share
 * names (--data-root / "data-root"); a directive given both ways, or an unknown key in the
 * file, is an error naming it. A custom build's own flags (berthdMain's `flags`) each set one
 * key of one plugin's config, the same key daemon.json's `plugins.config` sets.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseBuildSection } from './build-file.js';
import { defaultConfig, isDaemonLogLevel, UsageError, type DaemonConfig } from './config.js';

export { UsageError } from './config.js';

/** A custom build's flag: `--NAME` sets config key `key` of plugin `plugin` (typed, listed by --help). */
export interface BuildFlag {
  plugin: string;
  key: string;
  /** `list`: repeatable, a list of strings. */
  type: 'string' | 'boolean' | 'number' | 'list';
  /** One line for --help. */
  description: string;
}

/** Flag name (without the dashes) → what it sets. */
export type BuildFlags = Readonly<Record<string, BuildFlag>>;

export const DEFAULT_CONFIG_FILE = '/etc/berth/daemon.json';

/** daemon.json keys berthd understands (dockerd's names). */
const FILE_KEYS = [
  'hosts',
  'data-root',
  'exec-root',
  'pidfile',
  'group',
  'experimental',
  'live-restore',
  'log-level',
  'debug',
  'default-runtime',
  'runtimes',
  'tls',
  'tlsverify',
  'tlscacert',
  'tlscert',
  'tlskey',
  'labels',
  'shutdown-timeout',
  'userns-remap',
  'seccomp-profile',
  'init',
  'init-path',
  'bridge',
  'bip',
  'fixed-cidr',
  'mtu',
  'ip-masq',
  'default-address-pools',
  'berth-rootfs-dir',
  'berth-header-timeout',
  'berth-idle-timeout',
  'berth-max-connections',
  'plugins',
] as const;

/** flag name → daemon.json key, for the "specified both" check. */
const FLAG_TO_KEY: Record<string, string> = {
  host: 'hosts',
  'data-root': 'data-root',
  'exec-root': 'exec-root',
  pidfile: 'pidfile',
  group: 'group',
  experimental: 'experimental',
  'live-restore': 'live-restore',
  'log-level': 'log-level',
  debug: 'debug',
  'default-runtime': 'default-runtime',
  'add-runtime': 'runtimes',
  tlsverify: 'tlsverify',
  tlscacert: 'tlscacert',
  tlscert: 'tlscert',
  tlskey: 'tlskey',
  label: 'labels',
  'shutdown-timeout': 'shutdown-timeout',
  'userns-remap': 'userns-remap',
  'seccomp-profile': 'seccomp-profile',
  init: 'init',
  'init-path': 'init-path',
  bridge: 'bridge',
  bip: 'bip',
  'fixed-cidr': 'fixed-cidr',
  mtu: 'mtu',
  'ip-masq': 'ip-masq',
  'berth-rootfs-dir': 'berth-rootfs-dir',
  'berth-header-timeout': 'berth-header-timeout',
  'berth-idle-timeout': 'berth-idle-timeout',
  'berth-max-connections': 'berth-max-connections',
};

export const USAGE = `Usage: berthd [OPTIONS]

A container engine speaking the Docker Engine API.

Options:
  -H, --host list              Daemon socket(s) to connect to (default unix:///run/berth/berth.sock)
      --data-root string       Root directory of persistent state (default "/var/lib/berth")
      --exec-root string       Root directory for execution state files (default "/run/berth")
      --config-file string     Daemon configuration file (default "/etc/berth/daemon.json")
      --experimental           Enable experimental features
      --default-runtime string Default OCI runtime for containers (default "runc")
      --add-runtime name=path  Register an additional OCI compatible runtime
      --live-restore           Keep containers running when the daemon stops
  -l, --log-level string       Logging level ("debug"|"info"|"warn"|"error"|"fatal") (default "info")
  -D, --debug                  Enable debug mode
  -G, --group string           Group for the unix socket (default "docker")
  -p, --pidfile string         Path to use for daemon PID file (default "/run/berth.pid")
      --tlsverify              Use TLS and verify the remote (required for tcp://)
      --tlscacert string       Trust certs signed only by this CA
      --tlscert string         Path to TLS certificate file
      --tlskey string          Path to TLS key file
      --label list             Set key=value labels to the daemon
      --shutdown-timeout int   Seconds to wait for containers to stop on shutdown (default 15)
      --userns-remap string    User/Group setting for user namespaces ("default" or USER[:GROUP])
      --seccomp-profile string Path to the seccomp profile for containers, or "builtin"/"unconfined" (default "builtin")
      --init                   Run an init in every container (reaps zombies, forwards signals) unless it opts out
      --init-path string       Path to the docker-init binary (default: tini-static, else tini)
  -b, --bridge string          Attach containers to a network bridge ("none": no default bridge network) (default "berth0")
      --bip string             Specify default-bridge IPv4 network (e.g. 172.20.0.1/16)
      --fixed-cidr string      IPv4 subnet for the default bridge's container addresses
      --mtu int                Set the default bridge's MTU (default 1500)
      --ip-masq[=true|false]   Masquerade the default bridge's traffic leaving the machine (default false; dockerd's is true)
      --berth-rootfs-dir path  berth only: image names missing from the image store run on the subdirectory of that name
      --berth-header-timeout n berth only: seconds a client has to send a request's headers (default 30)
      --berth-idle-timeout n   berth only: seconds a keep-alive API connection may stay without a request (default 60)
      --berth-max-connections n berth only: open API connections per listener; at the cap the longest-idle one makes room (default 4096)
  -v, --version                Print version information and quit
  -h, --help                   Print usage
`;

/** berthd's --help, with a custom build's own flags after dockerd's. */
export function usage(flags: BuildFlags = {}): string {
  const own = Object.entries(flags);
  if (own.length === 0) return USAGE;
  const lines = own.map(([name, f]) => {
    const head = `      --${name}${f.type === 'boolean' ? '' : f.type === 'list' ? ' list' : ` ${f.type}`}`;
    return `${head.padEnd(31)}${f.description} (plugin ${f.plugin}: ${f.key})`;
  });
  return `${USAGE}\nOptions of this build:\n${lines.join('\n')}\n`;
}

export interface ParsedCommand {
  help: boolean;
  version: boolean;
  config: DaemonConfig;
}

function asString(v: unknown, key: string): string {
  if (typeof v !== 'string') throw new UsageError(`invalid daemon.json: "${key}" must be a string`);
  return v;
}
function asBool(v: unknown, key: string): boolean {
  if (typeof v !== 'boolean') throw new UsageError(`invalid daemon.json: "${key}" must be a boolean`);
  return v;
}
function asStrings(v: unknown, key: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new UsageError(`invalid daemon.json: "${key}" must be a list of strings`);
  return v as string[];
}

/** dockerd's flags (node:util parseArgs options). */
const BERTHD_OPTIONS = {
  host: { type: 'string', short: 'H', multiple: true },
  'data-root': { type: 'string' },
  'exec-root': { type: 'string' },
  'config-file': { type: 'string' },
  experimental: { type: 'boolean' },
  'default-runtime': { type: 'string' },
  'add-runtime': { type: 'string', multiple: true },
  'live-restore': { type: 'boolean' },
  'log-level': { type: 'string', short: 'l' },
  debug: { type: 'boolean', short: 'D' },
  group: { type: 'string', short: 'G' },
  pidfile: { type: 'string', short: 'p' },
  tlsverify: { type: 'boolean' },
  tlscacert: { type: 'string' },
  tlscert: { type: 'string' },
  tlskey: { type: 'string' },
  label: { type: 'string', multiple: true },
  'shutdown-timeout': { type: 'string' },
  'userns-remap': { type: 'string' },
  'seccomp-profile': { type: 'string' },
  init: { type: 'boolean' },
  'init-path': { type: 'string' },
  bridge: { type: 'string', short: 'b' },
  bip: { type: 'string' },
  'fixed-cidr': { type: 'string' },
  mtu: { type: 'string' },
  'ip-masq': { type: 'string' },
  'berth-rootfs-dir': { type: 'string' },
  'berth-header-timeout': { type: 'string' },
  'berth-idle-timeout': { type: 'string' },
  'berth-max-connections': { type: 'string' },
  version: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

const FLAG_NAME_RE = /^[a-z][a-z0-9-]*[a-z0-9]$/;

function checkBuildFlags(flags: BuildFlags, builtin: Record<string, unknown>): void {
  for (const [name, f] of Object.entries(flags)) {
    if (!FLAG_NAME_RE.test(name)) throw new TypeError(`build flag ${JSON.stringify(name)}: a flag name is lowercase letters, digits and dashes`);
    if (name in builtin) throw new TypeError(`build flag --${name} is one of berthd's own`);
    if (!['string', 'boolean', 'number', 'list'].includes(f.type) || !f.plugin || !f.key || !f.description) throw new TypeError(`build flag --${name}: needs plugin, key, type (string, boolean, number or list) and description`);
  }
}

function buildFlagValue(name: string, f: BuildFlag, raw: unknown): unknown {
  if (f.type !== 'number') return raw;
  const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  if (!Number.isFinite(n)) throw new UsageError(`invalid --${name} ${JSON.stringify(raw)}: expected a number`);
  return n;
}

export function parseBerthdArgs(argv: string[], readFile: (p: string) => string | null = defaultRead, flags: BuildFlags = {}): ParsedCommand {
  let parsed;
  checkBuildFlags(flags, BERTHD_OPTIONS);
  const own = Object.fromEntries(Object.entries(flags).map(([name, f]) => [name, f.type === 'boolean' ? { type: 'boolean' as const } : { type: 'string' as const, multiple: f.type === 'list' }]));
  try {
    parsed = parseArgs({
      // --ip-masq alone means true; Go's flag package (dockerd) also takes --ip-masq=true|false
      args: argv.map((a) => (a === '--ip-masq' ? '--ip-masq=true' : a)),
      strict: true,
      allowPositionals: false,
      // A custom build's flags beside dockerd's (their values are read untyped below).
      options: { ...own, ...BERTHD_OPTIONS } as typeof BERTHD_OPTIONS,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const f = parsed.values;
  const cfg = defaultConfig();

  // daemon.json first, then flags on top (conflicts refused).
  const configFile = f['config-file'] ?? DEFAULT_CONFIG_FILE;
  const text = readFile(configFile);
  if (text === null && f['config-file'] !== undefined) throw new UsageError(`unable to configure the daemon: open ${configFile}: no such file or directory`);
  const file: Record<string, unknown> = {};
  if (text !== null && text.trim() !== '') {
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`unable to configure the daemon: invalid JSON in ${configFile}: ${(err as Error).message}`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new UsageError(`unable to configure the daemon: ${configFile} must hold a JSON object`);
    Object.assign(file, obj);
  }
  const unknown = Object.keys(file).filter((k) => !(FILE_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) throw new UsageError(`the following directives don't match any configuration option: ${unknown.join(', ')}`);
  const both = Object.entries(FLAG_TO_KEY)
    .filter(([flag, key]) => (f as Record<string, unknown>)[flag] !== undefined && key in file)
    .map(([flag, key]) => `${key}: (from flag: ${String((f as Record<string, unknown>)[flag])}, from file: ${JSON.stringify(file[key])})`);
  if (both.length > 0) throw new UsageError(`the following directives are specified both as a flag and in the configuration file: ${both.join(', ')}`);

  if ('hosts' in file) cfg.hosts = asStrings(file.hosts, 'hosts');
  if ('data-root' in file) cfg.dataRoot = asString(file['data-root'], 'data-root');
  if ('exec-root' in file) cfg.execRoot = asString(file['exec-root'], 'exec-root');
  if ('pidfile' in file) cfg.pidfile = asString(file.pidfile, 'pidfile');
  if ('group' in file) {
    cfg.group = asString(file.group, 'group');
    cfg.groupExplicit = true;
  }
  if ('experimental' in file) cfg.experimental = asBool(file.experimental, 'experimental');
  if ('live-restore' in file) cfg.liveRestore = asBool(file['live-restore'], 'live-restore');
  if ('log-level' in file) cfg.logLevel = logLevel(asString(file['log-level'], 'log-level'));
  if ('debug' in file) cfg.debug = asBool(file.debug, 'debug');
  if ('default-runtime' in file) cfg.defaultRuntime = asString(file['default-runtime'], 'default-runtime');
  if ('runtimes' in file) {
    const r = file.runtimes;
    if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new UsageError('invalid daemon.json: "runtimes" must be an object');
    for (const [name, v] of Object.entries(r as Record<string, unknown>)) {
      const o = v as { path?: unknown; runtimeArgs?: unknown };
      if (typeof o !== 'object' || o === null || typeof o.path !== 'string') throw new UsageError(`invalid daemon.json: runtime ${name} needs a "path"`);
      addRuntime(cfg, name, o.path, o.runtimeArgs === undefined ? undefined : asStrings(o.runtimeArgs, `runtimes.${name}.runtimeArgs`));
    }
  }
  if ('tlsverify' in file) cfg.tls.verify = asBool(file.tlsverify, 'tlsverify');
  if ('tlscacert' in file) cfg.tls.ca = asString(file.tlscacert, 'tlscacert');
  if ('tlscert' in file) cfg.tls.cert = asString(file.tlscert, 'tlscert');
  if ('tlskey' in file) cfg.tls.key = asString(file.tlskey, 'tlskey');
  if ('labels' in file) cfg.labels = asStrings(file.labels, 'labels');
  if ('shutdown-timeout' in file) {
    if (typeof file['shutdown-timeout'] !== 'number' || file['shutdown-timeout'] < 0) throw new UsageError('invalid daemon.json: "shutdown-timeout" must be a non-negative number');
    cfg.shutdownTimeout = file['shutdown-timeout'];
  }
  if ('userns-remap' in file) cfg.usernsRemap = asString(file['userns-remap'], 'userns-remap');
  if ('seccomp-profile' in file) cfg.seccompProfile = asString(file['seccomp-profile'], 'seccomp-profile');
  if ('init' in file) cfg.init = asBool(file.init, 'init');
  if ('init-path' in file) cfg.initPath = asString(file['init-path'], 'init-path');
  // the default bridge network (the network-cni plugin)
  for (const [key, field] of [['bridge', 'bridge'], ['bip', 'bip'], ['fixed-cidr', 'fixedCidr']] as const) if (key in file) cfg.network[field] = asString(file[key], key);
  if ('mtu' in file) cfg.network.mtu = mtuValue(file.mtu);
  if ('ip-masq' in file) cfg.network.ipMasq = asBool(file['ip-masq'], 'ip-masq');
  if ('default-address-pools' in file) {
    const pools = file['default-address-pools'];
    if (!Array.isArray(pools) || pools.some((p: { base?: unknown; size?: unknown }) => typeof p?.base !== 'string' || typeof p?.size !== 'number')) {
      throw new UsageError('invalid daemon.json: "default-address-pools" must be a list of {"base": "a.b.c.d/n", "size": n}');
    }
    cfg.network.defaultAddressPools = (pools as Array<{ base: string; size: number }>).map((p) => ({ base: p.base, size: p.size }));
  }
  if ('berth-rootfs-dir' in file) cfg.rootfsDir = asString(file['berth-rootfs-dir'], 'berth-rootfs-dir');
  if ('plugins' in file) cfg.build = parseBuildSection(file.plugins, configFile);

  if (f.host) cfg.hosts = f.host;
  if (f['data-root']) cfg.dataRoot = f['data-root'];
  if (f['exec-root']) cfg.execRoot = f['exec-root'];
  if (f.pidfile !== undefined) cfg.pidfile = f.pidfile;
  if (f.group !== undefined) {
    cfg.group = f.group;
    cfg.groupExplicit = true;
  }
  if (f.experimental) cfg.experimental = true;
  if (f['live-restore']) cfg.liveRestore = true;
  if (f['log-level'] !== undefined) cfg.logLevel = logLevel(f['log-level']);
  if (f.debug) cfg.debug = true;
  if (cfg.debug) cfg.logLevel = 'debug';
  if (f['default-runtime'] !== undefined) cfg.defaultRuntime = f['default-runtime'];
  for (const spec of f['add-runtime'] ?? []) {
    const eq = spec.indexOf('=');
    if (eq <= 0 || eq === spec.length - 1) throw new UsageError(`invalid --add-runtime ${JSON.stringify(spec)}: expected name=path`);
    addRuntime(cfg, spec.slice(0, eq), spec.slice(eq + 1));
  }
  if (f.tlsverify) cfg.tls.verify = true;
  if (f.tlscacert !== undefined) cfg.tls.ca = f.tlscacert;
  if (f.tlscert !== undefined) cfg.tls.cert = f.tlscert;
  if (f.tlskey !== undefined) cfg.tls.key = f.tlskey;
  if (f.label) cfg.labels = f.label;
  if (f['shutdown-timeout'] !== undefined) {
    const n = Number(f['shutdown-timeout']);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`invalid --shutdown-timeout ${JSON.stringify(f['shutdown-timeout'])}: expected a non-negative integer`);
    cfg.shutdownTimeout = n;
  }
  if (f['userns-remap'] !== undefined) cfg.usernsRemap = f['userns-remap'];
  if (cfg.usernsRemap === '') delete cfg.usernsRemap;
  if (f['seccomp-profile'] !== undefined) cfg.seccompProfile = f['seccomp-profile'];
  if (cfg.seccompProfile === '') delete cfg.seccompProfile;
  if (f.init) cfg.init = true;
  if (f['init-path'] !== undefined) cfg.initPath = f['init-path'];
  if (f.bridge !== undefined) cfg.network.bridge = f.bridge;
  if (f.bip !== undefined) cfg.network.bip = f.bip;
  if (f['fixed-cidr'] !== undefined) cfg.network.fixedCidr = f['fixed-cidr'];
  if (f.mtu !== undefined) cfg.network.mtu = mtuValue(f.mtu);
  if (f['ip-masq'] !== undefined) {
    if (f['ip-masq'] !== 'true' && f['ip-masq'] !== 'false') throw new UsageError(`invalid --ip-masq ${JSON.stringify(f['ip-masq'])}: expected true or false`);
    cfg.network.ipMasq = f['ip-masq'] === 'true';
  }
  if (f['berth-rootfs-dir'] !== undefined) cfg.rootfsDir = f['berth-rootfs-dir'];
  for (const [key, field, scale, min] of CONNECTION_LIMITS) {
    const raw = key in file ? file[key] : f[key];
    if (raw === undefined) continue;
    const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
    if (typeof n !== 'number' || !Number.isFinite(n) || n < min || (scale === 1 && !Number.isInteger(n))) {
      throw new UsageError(`invalid ${key} ${JSON.stringify(raw)}: expected a ${scale === 1 ? 'whole number' : 'number of seconds'} of at least ${min}`);
    }
    (cfg.connections ??= {})[field] = Math.round(n * scale);
  }

  // A custom build's flags: each sets its plugin's config key, as daemon.json's plugins.config would (not both).
  const values = f as Record<string, unknown>;
  for (const [name, bf] of Object.entries(flags)) {
    if (values[name] === undefined) continue;
    const section = (cfg.build.config[bf.plugin] ??= {});
    if (bf.key in section) {
      throw new UsageError(`the following directives are specified both as a flag and in the configuration file: plugins.config.${bf.plugin}.${bf.key}: (from flag: ${String(values[name])}, from file: ${JSON.stringify(section[bf.key])})`);
    }
    section[bf.key] = buildFlagValue(name, bf, values[name]);
  }

  if (!(cfg.defaultRuntime in cfg.runtimes)) throw new UsageError(`default runtime ${cfg.defaultRuntime} is not registered (use --add-runtime ${cfg.defaultRuntime}=PATH)`);
  return { help: f.help ?? false, version: f.version ?? false, config: cfg };
}

/** The slow-client bounds (flag and daemon.json key, config field, to ms, smallest value). */
const CONNECTION_LIMITS = [
  ['berth-header-timeout', 'headerTimeoutMs', 1000, 0.1],
  ['berth-idle-timeout', 'idleTimeoutMs', 1000, 0.1],
  ['berth-max-connections', 'maxConnections', 1, 1],
] as const;

function addRuntime(cfg: DaemonConfig, name: string, path: string, runtimeArgs?: string[]): void {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw new UsageError(`invalid runtime name ${JSON.stringify(name)}`);
  if (name === 'runc') throw new UsageError('runtime name runc is reserved');
  cfg.runtimes[name] = runtimeArgs ? { path, runtimeArgs } : { path };
}

function mtuValue(v: unknown): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 68 || n > 65535) throw new UsageError(`invalid mtu ${JSON.stringify(v)}: expected an integer between 68 and 65535`);
  return n;
}

function logLevel(v: string): DaemonConfig['logLevel'] {
  if (!isDaemonLogLevel(v)) throw new UsageError(`unable to parse logging level: ${v}`);
  return v;
}

function defaultRead(p: string): string | null {
  if (!existsSync(p)) return null;
  return readFileSync(p, 'utf8');
}
