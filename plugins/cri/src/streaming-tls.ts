/**
 * TLS for the CRI streaming server (containerd's `enable_tls_streaming`): the plugin config's
 * `streamingTls` is either `{ cert, key }` (PEM files, e.g. the node's serving certificate) or
 * `{ selfSigned: true }`, a certificate made at each start and kept in memory only. Node's
 * crypto makes keys but not X.509 certificates, so the self-signed one comes from the `openssl`
 * CLI (in a private temp dir, deleted right after); without openssl, `selfSigned` fails the
 * plugin's start with the reason. With TLS the Exec/Attach/PortForward URLs are https://.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { promisify } from 'node:util';
import { PluginConfigError, errorMessage } from '@berth/core';

const execFileP = promisify(execFile);

/** `plugins.config.cri.streamingTls`. */
export interface StreamingTlsConfig {
  /** PEM certificate (chain) file. */
  cert?: string;
  /** PEM private key file of `cert`. */
  key?: string;
  /** Make a self-signed certificate at start instead (valid a year, for the listen host, 127.0.0.1, ::1, localhost and the host name). */
  selfSigned?: boolean;
}

/** What the HTTPS server is given. */
export interface TlsMaterial {
  cert: string;
  key: string;
}

/** Throws PluginConfigError unless `v` is `{ cert, key }` (absolute paths) or `{ selfSigned: true }`. */
export function validateStreamingTls(v: unknown): void {
  const bad = (why: string) => new PluginConfigError('streamingTls', why);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('must be an object: { "cert": FILE, "key": FILE } or { "selfSigned": true }');
  const c = v as Record<string, unknown>;
  const unknown = Object.keys(c).filter((k) => !['cert', 'key', 'selfSigned'].includes(k));
  if (unknown.length) throw bad(`unknown key ${JSON.stringify(unknown[0])}`);
  if (c.selfSigned !== undefined && typeof c.selfSigned !== 'boolean') throw bad('selfSigned must be true or false');
  const files = c.cert !== undefined || c.key !== undefined;
  if (c.selfSigned && files) throw bad('either cert and key or selfSigned, not both');
  if (!c.selfSigned) {
    for (const k of ['cert', 'key'] as const) if (typeof c[k] !== 'string' || !isAbsolute(c[k] as string)) throw bad(`${k} must be the absolute path of a PEM file (or set selfSigned)`);
  }
}

/** The certificate and key the server presents (read from the files, or made self-signed for `host`). */
export async function streamingTlsOf(c: StreamingTlsConfig, host: string): Promise<TlsMaterial> {
  let material: TlsMaterial;
  if (c.selfSigned) {
    material = await selfSignedCertificate(host);
  } else {
    try {
      material = { cert: await readFile(c.cert!, 'utf8'), key: await readFile(c.key!, 'utf8') };
    } catch (err) {
      throw new PluginConfigError('streamingTls', `cannot read the certificate or key: ${errorMessage(err)}`);
    }
  }
  try {
    createSecureContext(material); // a key that does not match the certificate fails here, not at the first client
  } catch (err) {
    throw new PluginConfigError('streamingTls', `unusable certificate/key pair: ${errorMessage(err)}`);
  }
  return material;
}

/** subjectAltName entries for a self-signed certificate of the server listening on `host`. */
export function subjectAltNames(host: string): string[] {
  const names = new Set(['IP:127.0.0.1', 'IP:::1', 'DNS:localhost', `DNS:${hostname()}`]);
  const wildcard = host === '' || host === '0.0.0.0' || host === '::';
  if (!wildcard) names.add(isIP(host) ? `IP:${host}` : `DNS:${host}`);
  return [...names];
}

/** A P-256 key and a self-signed certificate for it, by the openssl CLI. */
async function selfSignedCertificate(host: string): Promise<TlsMaterial> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-cri-tls-')); // mode 0700
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    await execFileP('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '365', '-subj', '/O=berth/CN=berth CRI streaming',
      '-addext', `subjectAltName=${subjectAltNames(host).join(',')}`,
    ]);
    return { cert: await readFile(cert, 'utf8'), key: await readFile(key, 'utf8') };
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new PluginConfigError('streamingTls', missing ? 'selfSigned needs the openssl CLI, which is not on PATH (or give cert and key)' : `openssl could not make a certificate: ${errorMessage(err)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
