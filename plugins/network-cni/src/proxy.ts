/**
 * The userland proxy (dockerd's docker-proxy, inside berthd): one listener per published host
 * port — TCP or UDP, on the binding's host address (0.0.0.0 when none) — that relays to the
 * container's address and port. CNI portmap's DNAT (conflist.ts) takes the traffic it can serve
 * before it reaches the socket; what is left for the proxy is what DNAT cannot serve: connections
 * to 127.0.0.1 and those from the container's own bridge (docs/networking.md). Holding the socket
 * is also what reserves the port, and it is bound before the CNI ADD that installs the DNAT:
 *  - a port another container of this daemon holds → "Bind for IP:PORT failed: port is already
 *    allocated" (dockerd's port allocator),
 *  - a port the kernel refuses (another process) → "... address already in use",
 * and a publish that fails closes what it opened before it throws (the start is rolled back).
 * An ephemeral port is the next free one of the kernel's ip_local_port_range, round robin as
 * dockerd's allocator. docs/networking.md argues why the proxy lives in berthd.
 */
import type { EventEmitter } from 'node:events';
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createConnection, createServer, isIPv6, type Server, type Socket } from 'node:net';
import { SystemError } from '@berth/core';
import type { BoundPort, PortRequest, Proto } from './ports.js';

/** How long a UDP flow without traffic keeps its upstream socket (docker-proxy's 90 s). */
export const UDP_IDLE_MS = 90_000;

interface Listener {
  bound: BoundPort;
  close(): Promise<void>;
}

export interface PortProxyOptions {
  /** The ephemeral range (ports.ts ephemeralRange). */
  range: () => Promise<[number, number]>;
  udpIdleMs?: number;
}

/**
 * Bind a socket or server: `start` listens/binds and calls `done` once bound; a bind error
 * rejects. Errors after that are ignored (a listener's later errors are its connections').
 */
export async function bindSocket(sock: EventEmitter, start: (done: () => void) => void): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    start(() => {
      sock.off('error', reject);
      resolve();
    });
  });
  sock.on('error', () => undefined);
}

const anyAddr = (ip: string) => ip === '' || ip === '0.0.0.0' || ip === '::';
const shown = (ip: string) => ip || '0.0.0.0';

export class PortProxy {
  private readonly byContainer = new Map<string, Listener[]>();
  private cursor: number | undefined;

  constructor(private readonly opts: PortProxyOptions) {}

  /**
   * Open a listener for every request, relaying to `target()` (asked per connection or UDP
   * flow: the ports are reserved before the container has an address); all or nothing.
   */
  async publish(containerId: string, requests: readonly PortRequest[], target: () => string): Promise<BoundPort[]> {
    const opened: Listener[] = [];
    try {
      for (const r of requests) opened.push(await this.openOne(containerId, r, target, opened));
    } catch (err) {
      await Promise.all(opened.map((l) => l.close()));
      throw err;
    }
    this.byContainer.set(containerId, [...(this.byContainer.get(containerId) ?? []), ...opened]);
    return opened.map((l) => l.bound);
  }

  /** Close the container's listeners (idempotent). */
  async release(containerId: string): Promise<void> {
    const list = this.byContainer.get(containerId) ?? [];
    this.byContainer.delete(containerId);
    await Promise.all(list.map((l) => l.close()));
  }

  /** The open listeners (tests, leak counts). */
  listeners(): BoundPort[] {
    return [...this.byContainer.values()].flat().map((l) => l.bound);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.byContainer.keys()].map((id) => this.release(id)));
  }

  private allocated(proto: Proto, hostIp: string, port: number, pending: readonly Listener[]): boolean {
    const all = [...this.byContainer.values()].flat().concat(pending);
    return all.some((l) => l.bound.proto === proto && l.bound.hostPort === port && (anyAddr(l.bound.hostIp) || anyAddr(hostIp) || l.bound.hostIp === hostIp));
  }

  private async openOne(containerId: string, r: PortRequest, target: () => string, pending: readonly Listener[]): Promise<Listener> {
    if (r.hostPorts && r.hostPorts[0] === r.hostPorts[1]) {
      const port = r.hostPorts[0];
      if (this.allocated(r.proto, r.hostIp, port, pending)) throw new SystemError(`Bind for ${shown(r.hostIp)}:${port} failed: port is already allocated`);
      return this.listen({ containerPort: r.containerPort, proto: r.proto, hostIp: r.hostIp, hostPort: port }, target);
    }
    // a range, or any port: the first free one (the ephemeral range round robin, as dockerd)
    const [lo, hi] = r.hostPorts ?? (await this.opts.range());
    const size = hi - lo + 1;
    const start = r.hostPorts ? lo : this.cursor !== undefined && this.cursor >= lo && this.cursor <= hi ? this.cursor : lo;
    for (let i = 0; i < size; i++) {
      const port = lo + ((start - lo + i) % size);
      if (this.allocated(r.proto, r.hostIp, port, pending)) continue;
      try {
        const l = await this.listen({ containerPort: r.containerPort, proto: r.proto, hostIp: r.hostIp, hostPort: port }, target);
        if (!r.hostPorts) this.cursor = port + 1 > hi ? lo : port + 1;
        return l;
      } catch (err) {
        if ((err as { inUse?: boolean }).inUse) continue;
        throw err;
      }
    }
    // dockerd's port allocator's words for an exhausted range
    throw new SystemError(r.hostPorts ? `Bind for ${shown(r.hostIp)}:${lo}-${hi} failed: port is already allocated` : 'all ports are allocated');
  }

  /** Open one listener; EADDRINUSE → an error with dockerd's words and `inUse` set. */
  async listen(bound: BoundPort, target: () => string): Promise<Listener> {
    const host = shown(bound.hostIp);
    try {
      return bound.proto === 'tcp' ? await this.listenTcp(bound, host, target) : await this.listenUdp(bound, host, target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const family = isIPv6(host) ? '6' : '4';
      const why = code === 'EADDRINUSE' ? 'address already in use' : code === 'EADDRNOTAVAIL' ? 'cannot assign requested address' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
      const e = new SystemError(`Error starting userland proxy: listen ${bound.proto}${family} ${host}:${bound.hostPort}: bind: ${why}`);
      (e as { inUse?: boolean }).inUse = code === 'EADDRINUSE';
      throw e;
    }
  }

  private async listenTcp(bound: BoundPort, host: string, target: () => string): Promise<Listener> {
    const conns = new Set<Socket>();
    // half-open both ways: a client's FIN goes to the container, its reply still comes back
    const server: Server = createServer({ allowHalfOpen: true }, (client) => {
      const to = target();
      if (!to) return void client.destroy(); // the container has no address yet
      const up = createConnection({ host: to, port: bound.containerPort, allowHalfOpen: true });
      conns.add(client).add(up);
      const end = () => {
        client.destroy();
        up.destroy();
        conns.delete(client);
        conns.delete(up);
      };
      client.on('error', end).on('close', end);
      up.on('error', end).on('close', end);
      client.pipe(up);
      up.pipe(client);
    });
    await bindSocket(server, (done) => server.listen({ host, port: bound.hostPort, exclusive: true }, done));
    return {
      bound,
      close: () =>
        new Promise<void>((resolve) => {
          for (const s of conns) s.destroy();
          server.close(() => resolve());
        }),
    };
  }

  private async listenUdp(bound: BoundPort, host: string, target: () => string): Promise<Listener> {
    const type = isIPv6(host) ? 'udp6' : 'udp4';
    const server: UdpSocket = createSocket({ type });
    const flows = new Map<string, { sock: UdpSocket; to: string; timer: NodeJS.Timeout }>();
    const idle = this.opts.udpIdleMs ?? UDP_IDLE_MS;
    const drop = (key: string) => {
      const f = flows.get(key);
      if (!f) return;
      flows.delete(key);
      clearTimeout(f.timer);
      f.sock.close();
    };
    server.on('message', (msg: Buffer, from: RemoteInfo) => {
      const key = `${from.address}:${from.port}`;
      let f = flows.get(key);
      if (!f) {
        const to = target();
        if (!to) return; // the container has no address yet
        const sock = createSocket({ type: isIPv6(to) ? 'udp6' : 'udp4' });
        sock.on('message', (reply: Buffer) => {
          server.send(reply, from.port, from.address);
          const cur = flows.get(key);
          cur?.timer.refresh();
        });
        sock.on('error', () => drop(key));
        f = { sock, to, timer: setTimeout(() => drop(key), idle) };
        f.timer.unref();
        flows.set(key, f);
      }
      f.timer.refresh();
      f.sock.send(msg, bound.containerPort, f.to);
    });
    await bindSocket(server, (done) => server.bind({ address: host, port: bound.hostPort, exclusive: true }, done));
    return {
      bound,
      close: () =>
        new Promise<void>((resolve) => {
          for (const k of [...flows.keys()]) drop(k);
          server.close(() => resolve());
        }),
    };
  }
}
