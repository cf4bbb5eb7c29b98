/**
 * CRI PortForward over WebSocket, served by the streaming server (streaming.ts) on
 * `/portforward/<token>`, framed as kubelet's streaming server frames it: subprotocol
 * `v4.channel.k8s.io` (binary messages), `v4.base64.channel.k8s.io` (text messages: the channel
 * as an ASCII digit, then base64 data) or none offered (binary). For the i-th forwarded port
 * channel 2i carries data both ways and channel 2i+1 the errors (server → client); the first
 * message on each of the two is the port as a little-endian uint16. The ports are the
 * PortForward request's, else the URL's `port` query parameters (repeated or comma-separated).
 * A connection to each port is opened at once; when it fails or breaks, the error's text goes
 * on its error channel; when every port's connection is over, the WebSocket closes.
 *
 * Where the connection is made: `localhost:<port>` inside the pod's network namespace, so a
 * port bound to the pod's 127.0.0.1 works. Node cannot enter a namespace, so each forwarded
 * connection is a small relay process — `nsenter --net=<pod netns file> node -e RELAY <port>` —
 * whose stdin/stdout are the connection's two directions and whose stderr is its error
 * (docs/cri.md argues it). A host-network pod's relay runs without nsenter.
 */
import { spawn } from 'node:child_process';
import type { WebSocket } from 'ws';

export const PORT_FORWARD_PROTOCOLS = ['v4.channel.k8s.io', 'v4.base64.channel.k8s.io'] as const;
const BASE64_PROTOCOL = 'v4.base64.channel.k8s.io';

/**
 * The relay: connects to 127.0.0.1:<port>, then [::1]:<port> (localhost of either family, as
 * kubelet's runtimes try both), pipes stdin → socket → stdout; a failure is written to stderr
 * with exit status 1.
 */
export const RELAY_SCRIPT = `
const net = require('node:net');
const port = Number(process.argv[1]);
const errors = [];
const tryHost = (hosts) => {
  const s = net.connect({ host: hosts[0], port });
  let up = false;
  s.on('connect', () => { up = true; process.stdin.pipe(s); s.pipe(process.stdout); });
  s.on('error', (e) => {
    if (!up) { errors.push(hosts[0] + ': ' + e.message); if (hosts.length > 1) return tryHost(hosts.slice(1)); }
    else errors.push(e.message);
    process.stderr.write('failed to connect to localhost:' + port + ' in the pod: ' + errors.join(', '));
    process.exitCode = 1;
    process.stdin.destroy();
  });
  s.on('close', () => { if (up) process.stdin.destroy(); });
};
tryHost(['127.0.0.1', '::1']);
`;

/** One forwarded connection: write() and end() send to the pod's port, onData gets what it sends back. */
export interface PortConnection {
  write(data: Buffer): void;
  /** The client sends no more (SPDY: its data stream's FIN): half-close toward the pod. */
  end?(): void;
  /** Tear it down (the client went away). */
  kill(): void;
  /** Settles when the connection is over: undefined, or the error's text. */
  done: Promise<string | undefined>;
}

/** How a connection to a pod's port is made (tests pass their own; the default is the relay). */
export type PortDialer = (netns: string | undefined, port: number, onData: (b: Buffer) => void) => PortConnection;

/** The default dialer: the relay process, in the pod's network namespace when it has its own. */
export const relayDialer: PortDialer = (netns, port, onData) => {
  const args = ['-e', RELAY_SCRIPT, String(port)];
  // Not berthd's environment: NODE_OPTIONS meant for berthd (--inspect, --require …) would break or slow each relay.
  const opts = { stdio: 'pipe' as const, env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' } };
  const child = netns ? spawn('nsenter', [`--net=${netns}`, '--', process.execPath, ...args], opts) : spawn(process.execPath, args, opts);
  const stderr: Buffer[] = [];
  child.stdout.on('data', onData);
  child.stderr.on('data', (b: Buffer) => stderr.push(b));
  child.stdin.on('error', () => {}); // the relay ended first: its exit says why
  const done = new Promise<string | undefined>((resolve) => {
    child.on('error', (err) => resolve(`cannot start the port relay: ${err.message}`));
    child.on('close', (code, signal) => {
      const text = Buffer.concat(stderr).toString().trim();
      resolve(code === 0 ? undefined : text || `the port relay ended (${signal ?? `exit ${code}`})`);
    });
  });
  return {
    write: (data) => void child.stdin.write(data),
    end: () => void child.stdin.end(),
    kill: () => void child.kill('SIGKILL'),
    done,
  };
};

/** The ports of a port-forward URL's query (`?port=80&port=8080` or `?port=80,8080`). */
export function portsOfQuery(url: string): number[] {
  const q = new URL(url, 'http://x').searchParams.getAll('port');
  return q.flatMap((s) => s.split(',')).map(Number);
}

/** Valid forwarded ports: 1..65535, at least one. */
export function validPorts(ports: number[]): boolean {
  return ports.length > 0 && ports.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535);
}

/** Serve one port-forward WebSocket until every port's connection is over (or the client leaves). */
export async function servePortForward(ws: WebSocket, job: { podId: string; netns?: string; ports: number[] }, dial: PortDialer): Promise<void> {
  const base64 = ws.protocol === BASE64_PROTOCOL;
  const send = (ch: number, data: Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    if (base64) ws.send(String.fromCharCode(48 + ch) + data.toString('base64'));
    else ws.send(Buffer.concat([Buffer.from([ch]), data]));
  };
  for (const [i, port] of job.ports.entries()) {
    const portBytes = Buffer.alloc(2);
    portBytes.writeUInt16LE(port);
    send(2 * i, portBytes);
    send(2 * i + 1, portBytes);
  }
  const conns = job.ports.map((port, i) => dial(job.netns, port, (b) => send(2 * i, b)));
  ws.on('message', (data: Buffer, isBinary) => {
    let b = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
    let ch: number;
    if (base64) {
      if (isBinary || b.length === 0) return;
      ch = b[0]! - 48;
      b = Buffer.from(b.subarray(1).toString(), 'base64');
    } else {
      if (!isBinary || b.length === 0) return;
      ch = b[0]!;
      b = b.subarray(1);
    }
    // Only data channels take input; an error channel or an unknown one is ignored.
    if (ch % 2 === 0 && conns[ch / 2] && b.length) conns[ch / 2]!.write(b);
  });
  ws.on('close', () => conns.forEach((c) => c.kill()));
  await Promise.all(
    conns.map(async (c, i) => {
      const err = await c.done;
      if (err) send(2 * i + 1, Buffer.from(`error forwarding port ${job.ports[i]} to pod ${job.podId}: ${err}`));
    }),
  );
  if (ws.readyState === ws.OPEN) ws.close(1000);
}
