/**
 * TLS on the CRI streaming server (streaming-tls.ts) without root (FakeRuntime): with
 * `streamingTls: { selfSigned: true }` the Exec URL is https:// and a WebSocket client that
 * trusts the server's certificate (fetched once, as an operator would pin it) streams the exec,
 * while one that trusts only the system CAs is refused; with `{ cert, key }` files the server
 * presents that certificate. Bad configs are PluginConfigErrors. Needs the openssl CLI (to make
 * the certificates); skips with the reason where it is absent.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import { LABEL, TYPE_CONTAINER, dialSpdy, openSpdyStream, readAll, streamingTlsOf, validateStreamingTls, type StreamingTlsConfig } from '../src/index.js';
import { disposeCri, startCri } from './harness.js';

const opensslMissing = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return null;
  } catch {
    return 'the openssl CLI is not on PATH (apt-get install openssl)';
  }
})();

let dir: string | undefined;
afterEach(async () => {
  await disposeCri();
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A CRI plugin on FakeRuntime with `streamingTls`, a pod and a running container: its Exec URL. */
async function execUrl(streamingTls: StreamingTlsConfig): Promise<string> {
  const { t, rt } = await startCri({ streamingTls }, dir);
  const pod = (await rt('RunPodSandbox', { config: { metadata: { name: 'p', uid: 'u', namespace: 'default', attempt: 0 } } })).pod_sandbox_id as string;
  const id = await t.createContainer({ Config: { Cmd: ['/bin/sleep'], Labels: { [LABEL.type]: TYPE_CONTAINER, [LABEL.sandboxId]: pod, [LABEL.name]: 'c' } } });
  await t.engine.containers.start(id);
  t.fake.script(id, { execOutput: 'over tls\n' });
  return (await rt('Exec', { container_id: id, cmd: ['echo'], stdout: true })).url as string;
}

/** Stream the URL over wss:// trusting `ca` (absent: the system CAs only); stdout (channel 1). */
function stdoutOf(url: string, ca?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^https/, 'wss'), ['v4.channel.k8s.io'], ca ? { ca } : {});
    let out = '';
    ws.on('message', (data: Buffer) => data[0] === 1 && (out += data.subarray(1).toString()));
    ws.on('close', () => resolve(out));
    ws.on('error', reject);
  });
}

/** The certificate the server presents (PEM), read without verifying it. */
function peerCertificate(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      resolve(new X509Certificate(s.getPeerCertificate().raw).toString());
      s.end();
    });
    s.on('error', reject);
  });
}

describe.skipIf(opensslMissing)(`CRI streaming over TLS${opensslMissing ? ` (skipped: ${opensslMissing})` : ''}`, () => {
  it('selfSigned: https:// URLs; a client trusting the certificate streams, one trusting only the system CAs is refused', async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-cri-tls-'));
    const url = await execUrl({ selfSigned: true });
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/exec\//);
    await expect(stdoutOf(url)).rejects.toThrow(/self[- ]signed/i);
    const pem = await peerCertificate(url);
    expect(new X509Certificate(pem).subjectAltName).toContain('IP Address:127.0.0.1');
    // The refused client spent no token (the TLS handshake failed first): the same URL still works.
    expect(await stdoutOf(url, pem)).toBe('over tls\n');
  });

  it('SPDY/3.1 upgrades over the same TLS: a client trusting the certificate gets the exec on its stdout stream', async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-cri-tls-'));
    const url = await execUrl({ selfSigned: true });
    await expect(dialSpdy(url, ['v4.channel.k8s.io'])).rejects.toThrow(/self[- ]signed/i);
    const d = await dialSpdy(url, ['v4.channel.k8s.io'], { ca: await peerCertificate(url) });
    try {
      expect(d.status).toBe(101);
      const [error, stdout] = await Promise.all(['error', 'stdout'].map((streamtype) => openSpdyStream(d.conn!, { streamtype })));
      const [status, out] = await Promise.all([readAll(error!), readAll(stdout!)]);
      expect(out).toBe('over tls\n');
      expect(JSON.parse(status)).toEqual({ metadata: {}, status: 'Success' });
    } finally {
      d.socket?.destroy();
    }
  });

  it('{ cert, key }: the server presents the given certificate', async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-cri-tls-'));
    const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=node-serving', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const url = await execUrl({ cert, key });
    const given = readFileSync(cert, 'utf8');
    expect(new X509Certificate(await peerCertificate(url)).fingerprint256).toBe(new X509Certificate(given).fingerprint256);
    expect(await stdoutOf(url, given)).toBe('over tls\n');
  });

  it('refuses bad streamingTls configs and a key that does not match its certificate', async () => {
    for (const bad of [{}, { selfSigned: true, cert: '/c.pem', key: '/k.pem' }, { cert: 'cert.pem', key: '/k.pem' }, { cert: '/c.pem' }, { selfSigned: 'yes' }, { selfSigned: true, ca: '/x' }]) {
      expect(() => validateStreamingTls(bad), JSON.stringify(bad)).toThrow(/streamingTls/);
    }
    expect(() => validateStreamingTls({ selfSigned: true })).not.toThrow();
    dir = mkdtempSync(join(tmpdir(), 'berth-cri-tls-'));
    const pair = (name: string) => {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir!, `${name}.key`), '-out', join(dir!, `${name}.crt`), '-days', '1', '-subj', `/CN=${name}`], { stdio: 'ignore' });
      return { cert: join(dir!, `${name}.crt`), key: join(dir!, `${name}.key`) };
    };
    const [a, b] = [pair('a'), pair('b')];
    const err = await streamingTlsOf({ cert: a.cert, key: b.key }, '127.0.0.1').catch((e: unknown) => e);
    expect(errorKind(err)).toBe('InvalidParameter');
    expect(String(err)).toMatch(/unusable certificate\/key pair/);
    await expect(streamingTlsOf({ cert: join(dir, 'none.crt'), key: a.key }, '127.0.0.1')).rejects.toThrow(/cannot read/);
  });
});
