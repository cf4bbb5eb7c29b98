/**
 * A client for the OCI distribution spec (Docker Registry HTTP API v2): manifests (OCI and
 * Docker schema 2, indexes and manifest lists), blobs with digest verification, uploads with
 * cross-repository mounts; Basic and Bearer-token auth driven by WWW-Authenticate challenges.
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { InvalidParameterError, NotFoundError, SystemError, UnauthorizedError, UnavailableError, ForbiddenError } from '@berth/core';
import { DigestMismatchError } from '../blobs.js';
import { sha256, type Digest } from '../digest.js';
import { DEFAULT_DOMAIN, type Reference } from '../reference.js';
import { INDEX_TYPES, MANIFEST_TYPES, MediaType } from '../types.js';
import { normalizeAuth, parseChallenges, type AuthConfig } from './auth.js';

export const MANIFEST_ACCEPT = [MediaType.OciIndex, MediaType.DockerManifestList, MediaType.OciManifest, MediaType.DockerManifest].join(', ');

export interface RegistryClientOptions {
  /** Registries (host[:port]) spoken to over plain HTTP; loopback ones always are (as dockerd). */
  insecureRegistries?: string[];
  fetch?: typeof fetch;
  userAgent?: string;
}

export interface FetchedManifest {
  body: Buffer;
  mediaType: string;
  digest: Digest;
}

function isLoopback(host: string): boolean {
  const h = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

async function errorText(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const j = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    if (j.errors?.length) return j.errors.map((e) => `${e.code ?? ''}: ${e.message ?? ''}`.replace(/^: /, '')).join('; ');
  } catch {
    // not JSON
  }
  return text.trim().slice(0, 300) || res.statusText;
}

export class RegistryClient {
  private readonly fetchFn: typeof fetch;
  private readonly insecure: Set<string>;
  private readonly userAgent: string;

  constructor(opts: RegistryClientOptions = {}) {
    this.fetchFn = opts.fetch ?? fetch;
    this.insecure = new Set(opts.insecureRegistries ?? []);
    this.userAgent = opts.userAgent ?? 'berth/0.1';
  }

  baseUrl(domain: string): string {
    const host = domain === DEFAULT_DOMAIN ? 'registry-1.docker.io' : domain;
    const scheme = isLoopback(domain) || this.insecure.has(domain) ? 'http' : 'https';
    return `${scheme}://${host}`;
  }

  repository(ref: Reference, auth: AuthConfig | null, actions: Array<'pull' | 'push'> = ['pull']): RepositorySession {
    return new RepositorySession(this, ref.domain, ref.path, auth ? normalizeAuth(auth) : null, actions);
  }

  /** Checks credentials against a registry (POST /auth). Resolves on success. */
  async login(auth: AuthConfig): Promise<{ Status: string; IdentityToken: string }> {
    const a = normalizeAuth(auth);
    let domain = (a.serveraddress ?? DEFAULT_DOMAIN).replace(/^https?:\/\//, '').replace(/\/.*$/, '');
    if (domain === 'index.docker.io' || domain === 'registry-1.docker.io') domain = DEFAULT_DOMAIN;
    const s = new RepositorySession(this, domain, '', a, []);
    const res = await s.request('GET', '/v2/', {});
    await res.body?.cancel();
    if (res.status === 401) throw new UnauthorizedError(`login attempt to ${this.baseUrl(domain)}/v2/ failed with status: 401 Unauthorized`);
    if (!res.ok) throw new UnavailableError(`login attempt to ${this.baseUrl(domain)}/v2/ failed with status: ${res.status} ${res.statusText}`);
    return { Status: 'Login Succeeded', IdentityToken: '' };
  }

  /** @internal */
  async rawFetch(url: string, init: RequestInit): Promise<Response> {
    try {
      return await this.fetchFn(url, { ...init, headers: { 'User-Agent': this.userAgent, ...(init.headers as Record<string, string>) } });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new UnavailableError(`error contacting registry ${new URL(url).host}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, { cause: err });
    }
  }
}

export class RepositorySession {
  private authorization: string | null = null;
  private readonly scopeActions: string;

  constructor(
    private readonly client: RegistryClient,
    readonly domain: string,
    readonly path: string,
    private readonly auth: AuthConfig | null,
    actions: Array<'pull' | 'push'>,
  ) {
    this.scopeActions = actions.join(',');
    // a registry token from X-Registry-Auth is used as it is
    if (auth?.registrytoken) this.authorization = `Bearer ${auth.registrytoken}`;
  }

  private basic(): string | null {
    if (!this.auth?.username) return null;
    return `Basic ${Buffer.from(`${this.auth.username}:${this.auth.password ?? ''}`).toString('base64')}`;
  }

  private async authenticate(res: Response, extraScopes: string[]): Promise<boolean> {
    const challenges = parseChallenges(res.headers.get('www-authenticate'));
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer?.params.realm) {
      const url = new URL(bearer.params.realm);
      if (bearer.params.service) url.searchParams.set('service', bearer.params.service);
      const scopes = new Set<string>(extraScopes);
      if (this.path && this.scopeActions) scopes.add(`repository:${this.path}:${this.scopeActions}`);
      if (bearer.params.scope) scopes.add(bearer.params.scope);
      for (const s of scopes) url.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      const b = this.basic();
      if (this.auth?.identitytoken) {
        // OAuth2 refresh token flow
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: this.auth.identitytoken, service: bearer.params.service ?? '', client_id: 'berth' });
        for (const s of scopes) form.append('scope', s);
        const r = await this.client.rawFetch(bearer.params.realm, { method: 'POST', body: form, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
        if (!r.ok) throw new UnauthorizedError(`failed to fetch an oauth token: ${r.status} ${await errorText(r)}`);
        const j = (await r.json()) as { access_token?: string; token?: string };
        this.authorization = `Bearer ${j.access_token ?? j.token}`;
        return true;
      }
      if (b) headers.Authorization = b;
      const r = await this.client.rawFetch(url.toString(), { method: 'GET', headers });
      if (r.status === 401 || r.status === 403) {
        await r.body?.cancel();
        throw new UnauthorizedError(`failed to authorize: failed to fetch anonymous token: unexpected status from GET request to ${url.origin}${url.pathname}: ${r.status} ${r.statusText}`);
      }
      if (!r.ok) throw new UnavailableError(`token server ${url.host} answered ${r.status}: ${await errorText(r)}`);
      const j = (await r.json()) as { token?: string; access_token?: string };
      const token = j.token ?? j.access_token;
      if (!token) throw new UnauthorizedError(`token server ${url.host} returned no token`);
      this.authorization = `Bearer ${token}`;
      return true;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      const b = this.basic();
      if (!b || this.authorization === b) return false;
      this.authorization = b;
      return true;
    }
    return false;
  }

  /** One request with auth; retries once after answering a 401 challenge. */
  async request(
    method: string,
    pathOrUrl: string,
    opts: { headers?: Record<string, string>; body?: () => RequestInit['body']; extraScopes?: string[]; redirect?: RequestInit['redirect'] },
  ): Promise<Response> {
    const url = pathOrUrl.startsWith('http') ? pathOrUrl : `${this.client.baseUrl(this.domain)}${pathOrUrl}`;
    const send = async () => {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      if (this.authorization) headers.Authorization = this.authorization;
      const body = opts.body?.() ?? null;
      return this.client.rawFetch(url, {
        method,
        headers,
        body,
        redirect: opts.redirect ?? 'follow',
        ...(body && typeof (body as { pipe?: unknown }).pipe !== 'function' && !(body instanceof Uint8Array) && !(typeof body === 'string') ? { duplex: 'half' } : {}),
      } as RequestInit);
    };
    let res = await send();
    if (res.status === 401) {
      const retry = await this.authenticate(res, opts.extraScopes ?? []);
      if (retry) {
        await res.body?.cancel();
        res = await send();
      }
    }
    return res;
  }

  private async fail(res: Response, what: string): Promise<never> {
    const detail = await errorText(res);
    const name = `${this.domain}/${this.path}`;
    if (res.status === 401) throw new UnauthorizedError(`${what} ${name}: unauthorized: ${detail}`);
    if (res.status === 403) throw new ForbiddenError(`${what} ${name}: denied: ${detail}`);
    if (res.status === 404) throw new NotFoundError(`${what} ${name}: not found: ${detail}`);
    if (res.status >= 500) throw new UnavailableError(`${what} ${name}: registry error ${res.status}: ${detail}`);
    throw new SystemError(`${what} ${name}: unexpected status ${res.status}: ${detail}`);
  }

  /** GET a manifest by tag or digest; verifies the content against the digest. */
  async getManifest(reference: string): Promise<FetchedManifest> {
    const res = await this.request('GET', `/v2/${this.path}/manifests/${reference}`, { headers: { Accept: MANIFEST_ACCEPT } });
    if (res.status === 404) {
      await res.body?.cancel();
      const ref = reference.startsWith('sha256:') ? `${this.domain}/${this.path}@${reference}` : `${this.domain}/${this.path}:${reference}`;
      throw new NotFoundError(`manifest for ${ref} not found: manifest unknown: manifest unknown`);
    }
    if (!res.ok) return this.fail(res, 'fetching manifest of');
    const body = Buffer.from(await res.arrayBuffer());
    const digest = sha256(body);
    if (reference.startsWith('sha256:') && digest !== reference) throw new DigestMismatchError(reference, digest);
    const header = res.headers.get('docker-content-digest');
    if (header && header.startsWith('sha256:') && header !== digest) throw new DigestMismatchError(header, digest);
    let mediaType = (res.headers.get('content-type') ?? '').split(';')[0].trim();
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { mediaType?: string; manifests?: unknown; layers?: unknown; schemaVersion?: number };
      if (parsed.mediaType) mediaType = parsed.mediaType;
      else if (!INDEX_TYPES.includes(mediaType) && !MANIFEST_TYPES.includes(mediaType)) {
        mediaType = parsed.manifests ? MediaType.OciIndex : MediaType.OciManifest;
      }
      if (parsed.schemaVersion === 1) throw new InvalidParameterError('Docker Image manifest schema 1 is not supported');
    } catch (err) {
      if (err instanceof InvalidParameterError) throw err;
      throw new InvalidParameterError(`manifest ${digest} is not valid JSON`);
    }
    return { body, mediaType, digest };
  }

  /** HEAD a blob: its size, or null when the repository does not have it. */
  async headBlob(digest: Digest): Promise<number | null> {
    const res = await this.request('HEAD', `/v2/${this.path}/blobs/${digest}`, {});
    await res.body?.cancel();
    if (res.status === 404) return null;
    if (!res.ok) return this.fail(res, 'checking blob of');
    return Number(res.headers.get('content-length') ?? -1);
  }

  /** GET a blob as a stream (redirects followed); the caller verifies the digest while reading. */
  async getBlob(digest: Digest): Promise<{ stream: Readable; size: number }> {
    const res = await this.request('GET', `/v2/${this.path}/blobs/${digest}`, {});
    if (!res.ok || !res.body) return this.fail(res, `fetching blob ${digest} of`);
    return { stream: Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), size: Number(res.headers.get('content-length') ?? -1) };
  }

  /** Tries a cross-repository mount; true when the registry mounted it. */
  async mountBlob(digest: Digest, fromPath: string): Promise<boolean> {
    const res = await this.request('POST', `/v2/${this.path}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(fromPath)}`, {
      headers: { 'Content-Length': '0' },
      extraScopes: [`repository:${fromPath}:pull`],
    });
    await res.body?.cancel();
    if (res.status === 201) return true;
    if (res.status === 202) {
      // an upload session was started instead: cancel it
      const loc = res.headers.get('location');
      if (loc) {
        const del = await this.request('DELETE', new URL(loc, this.client.baseUrl(this.domain)).toString(), {}).catch(() => null);
        await del?.body?.cancel();
      }
      return false;
    }
    if (!res.ok) return this.fail(res, 'mounting blob into');
    return false;
  }

  /** Monolithic upload of a blob from a file (POST then PUT ?digest=). */
  async uploadBlob(digest: Digest, file: string, size: number, onBytes?: (n: number) => void): Promise<void> {
    const start = await this.request('POST', `/v2/${this.path}/blobs/uploads/`, { headers: { 'Content-Length': '0' } });
    await start.body?.cancel();
    if (start.status !== 202) return this.fail(start, 'starting blob upload to');
    const loc = start.headers.get('location');
    if (!loc) throw new SystemError('registry did not return an upload location');
    const url = new URL(loc, this.client.baseUrl(this.domain));
    url.searchParams.set('digest', digest);
    const res = await this.request('PUT', url.toString(), {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) },
      body: () => {
        const rs = createReadStream(file);
        if (onBytes) rs.on('data', (c) => onBytes((c as Buffer).length));
        return Readable.toWeb(rs) as unknown as RequestInit['body'];
      },
    });
    await res.body?.cancel();
    if (res.status !== 201) return this.fail(res, `uploading blob ${digest} to`);
  }

  /** Uploads a small blob from memory. */
  async uploadBuffer(digest: Digest, data: Buffer): Promise<void> {
    const start = await this.request('POST', `/v2/${this.path}/blobs/uploads/`, { headers: { 'Content-Length': '0' } });
    await start.body?.cancel();
    if (start.status !== 202) return this.fail(start, 'starting blob upload to');
    const url = new URL(start.headers.get('location') ?? '', this.client.baseUrl(this.domain));
    url.searchParams.set('digest', digest);
    const res = await this.request('PUT', url.toString(), { headers: { 'Content-Type': 'application/octet-stream' }, body: () => new Uint8Array(data) });
    await res.body?.cancel();
    if (res.status !== 201) return this.fail(res, `uploading blob ${digest} to`);
  }

  async putManifest(reference: string, body: Buffer, mediaType: string): Promise<Digest> {
    const res = await this.request('PUT', `/v2/${this.path}/manifests/${reference}`, { headers: { 'Content-Type': mediaType }, body: () => new Uint8Array(body) });
    await res.body?.cancel();
    if (res.status !== 201) return this.fail(res, 'pushing manifest to');
    return sha256(body);
  }
}
