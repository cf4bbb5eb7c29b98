/**
 * The `berth` CLI's connection to berthd: which daemon (`-H/--host`, else DOCKER_HOST, else
 * berthd's default socket) and a GET of berth's own API (/berth/v1/…) over a unix socket or
 * plain tcp. An API error keeps the daemon's status and message (`{"message": …}`).
 */
import http from 'node:http';
import { DEFAULT_SOCKET } from '@berth/daemon';

export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    /** The daemon's HTTP status, when the daemon answered. */
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Where a request goes: a unix socket path, or a tcp host and port. */
export type Endpoint = { socketPath: string } | { host: string; port: number };

/** The daemon to talk to: the flag, else DOCKER_HOST, else berthd's default socket. */
export function daemonHost(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag || env.DOCKER_HOST || DEFAULT_SOCKET;
}

/** `unix:///path`, `/path`, `tcp://host:port` (plain HTTP) as an endpoint. */
export function parseHost(host: string): Endpoint {
  if (host.startsWith('unix://')) {
    const p = host.slice('unix://'.length);
    if (!p.startsWith('/')) throw new CliError(`invalid host ${JSON.stringify(host)}: a unix socket path must be absolute`);
    return { socketPath: p };
  }
  if (host.startsWith('/')) return { socketPath: host };
  if (host.startsWith('tcp://')) {
    let u: URL;
    try {
      u = new URL(`http://${host.slice('tcp://'.length)}`);
    } catch {
      throw new CliError(`invalid host ${JSON.stringify(host)}`);
    }
    return { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 2375 };
  }
  throw new CliError(`invalid host ${JSON.stringify(host)}: use unix:///path/to/socket or tcp://host:port`);
}

function describe(ep: Endpoint): string {
  return 'socketPath' in ep ? `unix://${ep.socketPath}` : `tcp://${ep.host}:${ep.port}`;
}

/** GET `path` from the daemon and parse its JSON; a non-2xx answer is a CliError with the daemon's message. */
export function getJson<T>(ep: Endpoint, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...ep, method: 'GET', path, headers: { Accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const status = res.statusCode ?? 0;
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          body = undefined;
        }
        if (status < 200 || status > 299) {
          const msg = (body as { message?: unknown } | undefined)?.message;
          reject(new CliError(typeof msg === 'string' ? msg : `the daemon answered ${status} to GET ${path}${text ? `: ${text.trim()}` : ''}`, status));
          return;
        }
        if (body === undefined) reject(new CliError(`the daemon's answer to GET ${path} is not JSON`, status));
        else resolve(body as T);
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      reject(new CliError(`cannot connect to the berth daemon at ${describe(ep)} (${err.code ?? err.message}). Is berthd running?`));
    });
    req.end();
  });
}
