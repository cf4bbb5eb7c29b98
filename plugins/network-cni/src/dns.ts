/**
 * Name resolution on user-defined networks (dockerd's embedded DNS): one small DNS server in
 * berthd per user network, on the network's gateway address, port 53, UDP and TCP. It answers
 * A questions for the names of the running containers on the networks of the container asking
 * (known by the query's source address: the lookup, publish.ts — each endpoint's DNSNames:
 * container name, aliases — compose's service name is one — and short ID), AAAA and
 * other types for those names with an empty answer, and relays every other question unchanged
 * to the asker's upstreams (publish.ts: the asking container's --dns servers when it has some,
 * as dockerd's ExtServers, else the host's resolvers — berthd runs in the host's namespace, so
 * a loopback stub such as systemd-resolved's 127.0.0.53 serves as well), each in turn until one
 * replies, over the protocol the question came in by, as dockerd relays: a truncated UDP reply
 * goes back as it is and the client asks again over TCP, which is relayed over TCP. The wire
 * format is dns-packet's.
 * docs/networking.md argues the gateway address over dockerd's 127.0.0.11 + iptables redirect.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import * as packet from 'dns-packet';
import { bindSocket } from './proxy.js';

const RCODE_SERVFAIL = 2;
/** How long one upstream gets before the next is tried. */
export const UPSTREAM_TIMEOUT_MS = 2000;

/** A name's IPv4 addresses for the asker at address `from`, or undefined when the name is no container's it may resolve. */
export type NameLookup = (name: string, from: string) => string[] | undefined;

export interface Upstream {
  host: string;
  port: number;
}

/** The nameservers of a resolv.conf (the host's). */
export async function hostResolvers(file = '/etc/resolv.conf'): Promise<Upstream[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => ({ host: m[1], port: 53 }));
}

export interface DnsServerOptions {
  address: string;
  port?: number;
  lookup: NameLookup;
  /** Where the questions of the asker at address `from` that `lookup` does not answer are relayed, in order. */
  upstreams: (from: string) => Promise<Upstream[]>;
  timeoutMs?: number;
  /** What went wrong answering one question (logged by the caller; the server keeps serving). */
  onError?: (err: unknown) => void;
}

export class DnsServer {
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private readonly conns = new Set<Socket>();

  constructor(private readonly opts: DnsServerOptions) {}

  /** The bound port (the option's, or the one the kernel chose for port 0). */
  get port(): number {
    return this.udp?.address().port ?? 0;
  }

  async start(): Promise<void> {
    // Port 0: the kernel picks the UDP port and TCP must take the same number, which another
    // TCP socket may hold: then both are tried again with another pick.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.bindBoth();
        return;
      } catch (err) {
        if (this.opts.port !== 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 8) throw err;
      }
    }
  }

  private async bindBoth(): Promise<void> {
    const udp = createSocket({ type: 'udp4' });
    udp.on('message', (msg, from) => {
      // the server may close while a question is relayed (its network's last container left):
      // the late reply then has nowhere to go, and must not become an unhandled rejection
      void this.answer(msg, from.address, 'udp')
        .then((reply) => {
          if (reply && this.udp === udp) udp.send(reply, from.port, from.address, () => undefined);
        })
        .catch((err: unknown) => this.opts.onError?.(err));
    });
    // a send's late error (a client gone, ICMP unreachable) arrives here, not as a crash
    udp.on('error', (err) => this.opts.onError?.(err));
    await bindSocket(udp, (done) => udp.bind({ address: this.opts.address, port: this.opts.port ?? 53, exclusive: true }, done));
    this.udp = udp;
    const tcp = createServer((sock) => this.serveTcp(sock));
    try {
      await bindSocket(tcp, (done) => tcp.listen({ host: this.opts.address, port: this.port, exclusive: true }, done));
    } catch (err) {
      await this.close();
      throw err;
    }
    this.tcp = tcp;
  }

  async close(): Promise<void> {
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    for (const s of this.conns) s.destroy();
    await Promise.all([
      udp ? new Promise<void>((r) => udp.close(() => r())) : undefined,
      tcp ? new Promise<void>((r) => tcp.close(() => r())) : undefined,
    ]);
  }

  /** DNS over TCP: 2-byte length-prefixed messages. */
  private serveTcp(sock: Socket): void {
    this.conns.add(sock);
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        void this.answer(msg, sock.remoteAddress ?? '', 'tcp')
          .then((reply) => {
            if (!reply || sock.destroyed) return;
            const len = Buffer.alloc(2);
            len.writeUInt16BE(reply.length);
            sock.write(Buffer.concat([len, reply]));
          })
          .catch((err: unknown) => this.opts.onError?.(err));
      }
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => this.conns.delete(sock));
  }

  /** The reply to one query message from address `from` over `proto` (undefined: not a query worth answering). */
  async answer(msg: Buffer, from: string, proto: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    let q: packet.DecodedPacket;
    try {
      q = packet.decode(msg);
    } catch {
      return undefined;
    }
    if (q.type !== 'query' || !q.questions?.length) return undefined;
    const question = q.questions[0];
    const name = question.name.replace(/\.$/, '').toLowerCase();
    const asker = from.replace(/^::ffff:/, '');
    const ips = this.opts.lookup(name, asker);
    const base = { type: 'response' as const, id: q.id, questions: q.questions };
    const rd = (q.flags ?? 0) & packet.RECURSION_DESIRED;
    if (ips) {
      const answers: packet.Answer[] = question.type === 'A' ? ips.map((data) => ({ type: 'A' as const, name: question.name, ttl: 600, data })) : [];
      return packet.encode({ ...base, flags: packet.AUTHORITATIVE_ANSWER | packet.RECURSION_AVAILABLE | rd, answers });
    }
    const relayed = await this.forward(msg, asker, proto);
    return relayed ?? packet.encode({ ...base, flags: packet.RECURSION_AVAILABLE | rd | RCODE_SERVFAIL });
  }

  /** The query, unchanged, over `proto` to each of the asker's upstreams in turn; the first reply. */
  private async forward(msg: Buffer, from: string, proto: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    const exchange = proto === 'tcp' ? tcpExchange : udpExchange;
    for (const up of await this.opts.upstreams(from)) {
      const reply = await exchange(msg, up, this.opts.timeoutMs ?? UPSTREAM_TIMEOUT_MS).catch(() => undefined);
      if (reply) return reply;
    }
    return undefined;
  }
}

/** Whether `reply` answers `query` (same ID). */
const repliesTo = (reply: Buffer, query: Buffer) => reply.length >= 2 && reply.readUInt16BE(0) === query.readUInt16BE(0);

/**
 * One exchange with an upstream: `open` opens its socket, hands `done` the reply (or an error)
 * and returns how to close it; the first outcome or the timeout settles it, and the socket closes.
 */
function exchange(timeoutMs: number, open: (done: (err: Error | undefined, reply?: Buffer) => void) => () => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let close = () => {};
    const done = (err: Error | undefined, reply?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      close();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(() => done(new Error('upstream timed out')), timeoutMs);
    close = open(done);
  });
}

function udpExchange(msg: Buffer, up: Upstream, timeoutMs: number): Promise<Buffer> {
  return exchange(timeoutMs, (done) => {
    const sock = createSocket({ type: up.host.includes(':') ? 'udp6' : 'udp4' });
    sock.on('error', (err) => done(err));
    sock.on('message', (reply: Buffer) => {
      if (repliesTo(reply, msg)) done(undefined, reply);
    });
    sock.send(msg, up.port, up.host);
    return () => sock.close();
  });
}

/** One length-prefixed exchange with the upstream over TCP. */
function tcpExchange(msg: Buffer, up: Upstream, timeoutMs: number): Promise<Buffer> {
  return exchange(timeoutMs, (done) => {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(msg.length);
    const sock = createConnection({ host: up.host, port: up.port }, () => sock.write(Buffer.concat([len, msg])));
    let buf = Buffer.alloc(0);
    sock.on('error', (err) => done(err));
    sock.on('end', () => done(new Error('upstream closed the connection')));
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      const reply = buf.subarray(2, 2 + buf.readUInt16BE(0));
      done(repliesTo(reply, msg) ? undefined : new Error('upstream replied to another query'), reply);
    });
    return () => sock.destroy();
  });
}
