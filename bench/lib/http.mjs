// A minimal Docker Engine API client over a unix socket (node:http, no dependencies), and a
// closed-loop load generator: C connections, each sending its next request when the
// previous answer is complete.
import http from 'node:http';
import { ms, now } from './stats.mjs';

export class ApiClient {
  /** @param {string} socketPath @param {string} version API version prefix, e.g. "1.41" */
  constructor(socketPath, version = '1.41', maxSockets = 16) {
    this.socketPath = socketPath;
    this.prefix = `/v${version}`;
    // No keep-alive: a connection idle for a few seconds may be closed by the server just as
    // it is reused (EPIPE/ECONNRESET on a non-idempotent POST); unix connects are cheap.
    this.agent = new http.Agent({ keepAlive: false, maxSockets });
  }

  /** Resolves {status, body(text)}; rejects on transport errors only. */
  raw(method, path, body, timeoutMs = 120_000) {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = http.request(
        {
          socketPath: this.socketPath,
          agent: this.agent,
          method,
          path: this.prefix + path,
          headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
          timeout: timeoutMs,
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out after ${timeoutMs} ms`)));
      req.on('error', (err) => reject(new Error(`${method} ${path}: ${err.message}`, { cause: err })));
      req.end(data);
    });
  }

  /** JSON request that must answer 2xx (304 also accepted for start/stop). */
  async call(method, path, body) {
    const r = await this.raw(method, path, body);
    if (r.status >= 300 && r.status !== 304) {
      let msg = r.body;
      try {
        msg = JSON.parse(r.body).message ?? msg;
      } catch {
        /* not JSON */
      }
      throw new Error(`${method} ${path} → ${r.status}: ${msg.trim()}`);
    }
    return r.body ? JSON.parse(r.body) : null;
  }

  close() {
    this.agent.destroy();
  }
}

/** Runs fn(i) for i in [0, n) with at most `inFlight` at once; rejects on the first error. */
export async function pool(n, inFlight, fn) {
  let next = 0;
  let failed = null;
  const results = new Array(n);
  const worker = async () => {
    while (next < n && !failed) {
      const i = next++;
      try {
        results[i] = await fn(i);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, n) }, worker));
  if (failed) throw failed;
  return results;
}

/**
 * Closed-loop load: `connections` keep-alive connections, each looping GET paths[i % len]
 * for `durationMs`. Returns {requests, errors, rps, latencies(ms)}; non-2xx counts as error.
 */
export async function load(socketPath, paths, { connections = 200, durationMs = 5000 } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
  const latencies = [];
  let errors = 0;
  let counter = 0;
  const firstError = [];
  const t0 = now();
  const deadline = Date.now() + durationMs;
  const one = (p) =>
    new Promise((resolve) => {
      const t = now();
      const req = http.request({ socketPath, agent, method: 'GET', path: p }, (res) => {
        res.on('data', () => {});
        res.on('end', () => {
          if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) latencies.push(ms(t, now()));
          else {
            errors++;
            if (firstError.length < 1) firstError.push(`HTTP ${res.statusCode} for ${p}`);
          }
          resolve();
        });
      });
      req.on('error', (err) => {
        errors++;
        if (firstError.length < 1) firstError.push(err.message);
        resolve();
      });
      req.end();
    });
  const conn = async () => {
    while (Date.now() < deadline) await one(paths[counter++ % paths.length]);
  };
  await Promise.all(Array.from({ length: connections }, conn));
  const elapsed = ms(t0, now());
  agent.destroy();
  return { requests: latencies.length, errors, firstError: firstError[0], elapsedMs: elapsed, rps: (latencies.length / elapsed) * 1000, latencies };
}
