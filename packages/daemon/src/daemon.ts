/**
 * berthd's server lifecycle: the data-root lock and pidfile, the API listeners
 * (unix sockets 0660 root:group, tcp only with mutual TLS), and a graceful shutdown that
 * stops accepting, ends long-lived streams, finishes what is in flight, then lets the
 * engine stop (or, with live restore, leave) the containers.
 */
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { ConflictError, InvalidParameterError, silentLogger, type Logger } from '@berth/core';
import type { App } from './app.js';
import { DEFAULT_CONNECTION_LIMITS, limitConnections, type ConnectionLimits, type ConnectionTracker } from './connections.js';
import { attachApp } from './inject.js';

export interface TlsOptions {
  verify: boolean;
  ca?: string;
  cert?: string;
  key?: string;
}

export interface ServeOptions {
  /** -H values: unix:///path, tcp://host:port. */
  hosts: string[];
  dataRoot: string;
  execRoot: string;
  /** Pidfile path; '' = none. */
  pidfile: string;
  /** Group owning the unix sockets (name or gid); '' = root. */
  group: string;
  /** True when --group was given explicitly (then a missing group is an error, as in dockerd). */
  groupExplicit?: boolean;
  tls?: TlsOptions;
  logger?: Logger;
  /** How long shutdown waits for in-flight requests before aborting them (ms). */
  shutdownGraceMs?: number;
  /** Slow-client bounds per listener (connections.ts); unset fields take the defaults. */
  connections?: Partial<ConnectionLimits>;
}

export interface ListeningAddress {
  host: string;
  /** Socket path for unix, "host:port" for tcp. */
  address: string;
}

/** The data-root lock: a file holding the owner's pid. A live owner → ConflictError. */
export class DataRootLock {
  private fd: number | null = null;
  constructor(readonly file: string) {}

  acquire(): void {
    mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o711 });
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        this.fd = openSync(this.file, 'wx', 0o600);
        writeSync(this.fd, `${process.pid}\n`);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = readPid(this.file);
      if (owner !== null && owner !== process.pid && pidAlive(owner)) {
        throw new ConflictError(`data root ${path.dirname(this.file)} is in use by another berthd (pid ${owner}); stop it first`);
      }
      // Stale lock of a dead daemon: take it over.
      rmSync(this.file, { force: true });
    }
    throw new ConflictError(`could not lock data root ${path.dirname(this.file)}`);
  }

  release(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
    if (readPid(this.file) === process.pid) rmSync(this.file, { force: true });
  }
}

function readPid(file: string): number | null {
  try {
    const n = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function lookupGroup(group: string): number | null {
  if (/^\d+$/.test(group)) return Number(group);
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const [name, , gid] = line.split(':');
      if (name === group) return Number(gid);
    }
  } catch {
    // no /etc/group
  }
  return null;
}

/** Parse one -H value into a listener spec; throws InvalidParameterError on anything else. */
export function parseHost(host: string): { proto: 'unix'; path: string } | { proto: 'tcp'; host: string; port: number } {
  if (host.startsWith('unix://')) {
    const p = host.slice('unix://'.length);
    if (!p.startsWith('/')) throw new InvalidParameterError(`invalid unix socket address ${host}: the path must be absolute`);
    return { proto: 'unix', path: p };
  }
  if (host.startsWith('tcp://')) {
    const rest = host.slice('tcp://'.length).replace(/\/$/, '');
    const m = /^(\[[^\]]+\]|[^:]*)(?::(\d+))?$/.exec(rest);
    if (!m) throw new InvalidParameterError(`invalid tcp address ${host}`);
    const port = m[2] ? Number(m[2]) : 2376;
    if (port < 1 || port > 65535) throw new InvalidParameterError(`invalid tcp port in ${host}`);
    return { proto: 'tcp', host: (m[1] || '127.0.0.1').replace(/^\[|\]$/g, ''), port };
  }
  throw new InvalidParameterError(`invalid host ${JSON.stringify(host)}: expected unix:///path or tcp://host:port`);
}

async function socketInUse(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(file);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class ApiServer {
  private readonly servers: Array<{ server: http.Server; unixPath?: string }> = [];
  private readonly lock: DataRootLock;
  private readonly logger: Logger;
  private pidfileWritten = false;
  readonly addresses: ListeningAddress[] = [];
  /** One per listener, in the order of `addresses`. */
  readonly connections: ConnectionTracker[] = [];

  constructor(
    private readonly app: App,
    private readonly opts: ServeOptions,
  ) {
    this.lock = new DataRootLock(path.join(opts.dataRoot, 'berthd.lock'));
    this.logger = opts.logger ?? silentLogger;
  }

  /** Validate the options before anything is touched (bad hosts, tcp without mutual TLS). */
  static validate(opts: ServeOptions): void {
    if (opts.hosts.length === 0) throw new InvalidParameterError('no API host to listen on');
    for (const h of opts.hosts) {
      const spec = parseHost(h);
      if (spec.proto === 'tcp') {
        const t = opts.tls;
        if (!t || !t.verify || !t.ca || !t.cert || !t.key) {
          throw new InvalidParameterError(`refusing to listen on ${h} without mutual TLS: pass --tlsverify with --tlscacert, --tlscert and --tlskey`);
        }
      }
    }
  }

  /** Validate, lock the data root, write the pidfile: before the engine loads any state. */
  acquire(): void {
    ApiServer.validate(this.opts);
    this.lock.acquire();
    try {
      mkdirSync(this.opts.execRoot, { recursive: true, mode: 0o700 });
      this.writePidfile();
    } catch (err) {
      this.lock.release();
      throw err;
    }
  }

  /** Listen on every host; on failure nothing stays listening (the lock is kept: call release()). */
  async listen(): Promise<void> {
    try {
      for (const h of this.opts.hosts) await this.listenOn(h);
    } catch (err) {
      await this.closeServers();
      throw err;
    }
  }

  async start(): Promise<void> {
    this.acquire();
    try {
      await this.listen();
    } catch (err) {
      this.release();
      throw err;
    }
  }

  private writePidfile(): void {
    const file = this.opts.pidfile;
    if (!file) return;
    const owner = readPid(file);
    if (owner !== null && owner !== process.pid && pidAlive(owner)) {
      throw new ConflictError(`pid file found, ensure berthd is not running or delete ${file}`);
    }
    mkdirSync(path.dirname(file), { recursive: true });
    const fd = openSync(file, 'w', 0o644);
    writeSync(fd, `${process.pid}`);
    closeSync(fd);
    this.pidfileWritten = true;
  }

  private removePidfile(): void {
    if (this.pidfileWritten && readPid(this.opts.pidfile) === process.pid) rmSync(this.opts.pidfile, { force: true });
    this.pidfileWritten = false;
  }

  private async listenOn(host: string): Promise<void> {
    const spec = parseHost(host);
    let server: http.Server;
    if (spec.proto === 'tcp') {
      const t = this.opts.tls as Required<TlsOptions>;
      server = https.createServer({
        ca: readFileSync(t.ca),
        cert: readFileSync(t.cert),
        key: readFileSync(t.key),
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
      }) as unknown as http.Server;
    } else {
      server = http.createServer();
    }
    attachApp(server, this.app);
    const tracker = limitConnections(server, { ...DEFAULT_CONNECTION_LIMITS, ...this.opts.connections }, this.logger, spec.proto === 'tcp');
    if (spec.proto === 'unix') {
      mkdirSync(path.dirname(spec.path), { recursive: true, mode: 0o755 });
      if (existsSync(spec.path)) {
        if (await socketInUse(spec.path)) throw new ConflictError(`${spec.path} is in use by another daemon`);
        unlinkSync(spec.path);
      }
      await this.listenServer(server, (done) => server.listen(spec.path, done));
      this.servers.push({ server, unixPath: spec.path });
      this.connections.push(tracker);
      chmodSync(spec.path, 0o660);
      if (this.opts.group) {
        const gid = lookupGroup(this.opts.group);
        if (gid === null) {
          if (this.opts.groupExplicit) throw new InvalidParameterError(`group ${this.opts.group} not found`);
          this.logger.debug('socket group not found; the socket stays root:root', { group: this.opts.group });
        } else {
          chownSync(spec.path, 0, gid);
        }
      }
      this.addresses.push({ host, address: spec.path });
    } else {
      await this.listenServer(server, (done) => server.listen(spec.port, spec.host, done));
      this.servers.push({ server });
      this.connections.push(tracker);
      const a = server.address() as net.AddressInfo;
      this.addresses.push({ host, address: `${a.address}:${a.port}` });
    }
    this.logger.info('API listen on ' + host);
  }

  /**
   * Listen; a failure to listen rejects. Afterwards the listener's errors (accept failing with
   * EMFILE when the process is out of file descriptors) are logged, at most every 10 s, and
   * never end the daemon: it keeps accepting once descriptors are free again.
   */
  private async listenServer(server: http.Server, listen: (done: () => void) => void): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      listen(() => {
        server.off('error', reject);
        resolve();
      });
    });
    let last = 0;
    server.on('error', (err: NodeJS.ErrnoException) => {
      const now = Date.now();
      if (now - last < 10_000) return;
      last = now;
      this.logger.error('API listener error; still listening', { code: err.code, error: err.message });
    });
  }

  private async closeServers(): Promise<void> {
    await Promise.all(
      this.servers.map(
        ({ server, unixPath }) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeIdleConnections();
            if (unixPath) rmSync(unixPath, { force: true });
          }),
      ),
    );
    this.servers.length = 0;
  }

  /**
   * Stop accepting, end long-lived streams, wait for in-flight requests (up to the grace
   * period, then abort them), close every connection. The pidfile and lock stay until
   * `release()`, after the engine has shut down.
   */
  async shutdown(): Promise<void> {
    const servers = this.servers.map((s) => s.server);
    const closing = this.closeServers();
    this.app.abortStreams();
    const grace = this.opts.shutdownGraceMs ?? 15_000;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.app.drained(), new Promise<void>((resolve) => (timer = setTimeout(resolve, grace)))]);
    if (timer) clearTimeout(timer);
    if (this.app.inflight() > 0) {
      this.logger.warn('aborting requests still in flight after the grace period', { count: this.app.inflight() });
      this.app.abortAll();
    }
    for (const server of servers) server.closeAllConnections();
    await closing;
  }

  release(): void {
    this.removePidfile();
    this.lock.release();
  }
}
