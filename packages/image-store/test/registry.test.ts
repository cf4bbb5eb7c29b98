/**
 * Pull and push against Debian's docker-registry on 127.0.0.1 (never the internet): plain,
 * htpasswd (Basic) and Bearer-token auth, mounts, manifest lists with platform selection,
 * digest verification.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { errorKind, shortId } from '@berth/core';
import { sha256, type Digest } from '../src/digest.js';
import type { JSONMessage } from '../src/progress.js';
import { ImageService } from '../src/service.js';
import { MediaType } from '../src/types.js';
import { buildTestImage, caught, gzip, makeTar, streamOf, tempDir } from './helpers.js';
import { registrySkip, startRegistry, startTokenFront, type TestRegistry } from './registry-server.js';

let img: Awaited<ReturnType<typeof buildTestImage>>;
let base: string;
let svc: ImageService;

beforeAll(async () => {
  img = await buildTestImage();
}, 120_000);
beforeEach(async () => {
  base = await tempDir();
  svc = new ImageService({ dataRoot: path.join(base, 'data'), rootfsDriver: 'copy' });
  await svc.init();
  await svc.load(createReadStream(img.saveTar));
});
afterEach(async () => {
  await svc.close();
  await fsp.rm(base, { recursive: true, force: true });
});

async function expectNoLeftovers(s: ImageService) {
  expect((await fsp.readdir(s.store.layers.dir)).filter((n) => n.startsWith('tmp-'))).toEqual([]);
  expect(await fsp.readdir(path.join(s.store.root, 'blobs', 'tmp'))).toEqual([]);
}

describe.skipIf(registrySkip !== null)(`registry without auth (docker-registry on 127.0.0.1)${registrySkip ? ` (skipped: ${registrySkip})` : ''}`, () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry();
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('push, rmi, pull back: same image ID, RepoDigests, progress messages', async () => {
    const name = `${reg.host}/busybox`;
    await svc.tag('berth-test/busybox', name, 'latest');
    const pushMsgs: JSONMessage[] = [];
    await svc.push(name, { tag: 'latest', progress: (m) => pushMsgs.push(m) });
    expect(pushMsgs[0]).toEqual({ status: `The push refers to repository [${name}]` });
    expect(pushMsgs.some((m) => m.status === 'Pushed')).toBe(true);
    const aux = pushMsgs.find((m) => m.aux)?.aux as { Tag: string; Digest: Digest; Size: number };
    expect(aux.Tag).toBe('latest');
    // the registry serves the manifest we pushed
    const r = await fetch(`http://${reg.host}/v2/busybox/manifests/latest`, { headers: { Accept: MediaType.DockerManifest } });
    const body = Buffer.from(await r.arrayBuffer());
    expect(sha256(body)).toBe(aux.Digest);
    expect(JSON.parse(body.toString()).config.digest).toBe(img.id);

    await svc.remove(name);
    await svc.remove('berth-test/busybox');
    expect(await svc.store.layers.list()).toEqual([]);

    const pullMsgs: JSONMessage[] = [];
    const id = await svc.pull(name, { progress: (m) => pullMsgs.push(m) });
    expect(id).toBe(img.id);
    expect(pullMsgs[0]).toEqual({ status: 'Pulling from 127.0.0.1:' + reg.port + '/busybox', id: 'latest' });
    expect(pullMsgs.map((m) => m.status)).toEqual(expect.arrayContaining(['Pulling fs layer', 'Downloading', 'Verifying Checksum', 'Download complete', 'Extracting', 'Pull complete', `Digest: ${aux.Digest}`, `Status: Downloaded newer image for ${name}:latest`]));
    const i = await svc.inspect(name);
    expect(i.RepoTags).toEqual([`${name}:latest`]);
    expect(i.RepoDigests).toEqual([`${name}@${aux.Digest}`]);
    // pulling again: up to date, nothing downloaded
    const again: JSONMessage[] = [];
    await svc.pull(name, { progress: (m) => again.push(m) });
    expect(again.map((m) => m.status)).toContain('Already exists');
    expect(again.map((m) => m.status)).toContain(`Status: Image is up to date for ${name}:latest`);
    expect(again.map((m) => m.status)).not.toContain('Downloading');
    // by digest
    expect(await svc.pull(`${name}@${aux.Digest}`)).toBe(img.id);
    await expectNoLeftovers(svc);
  });

  it('a push or pull whose client went away stops (ABORT_ERR): no tag in the registry, no image, no temp file', async () => {
    const name = `${reg.host}/cancelled`;
    await svc.tag(img.id, name, 'v1');
    const early = new AbortController();
    early.abort();
    const pushErr = await caught(svc.push(name, { tag: 'v1', signal: early.signal }));
    expect((pushErr as NodeJS.ErrnoException).code).toBe('ABORT_ERR');
    expect((await fetch(`http://${reg.host}/v2/cancelled/manifests/v1`, { headers: { Accept: MediaType.DockerManifest } })).status).toBe(404);
    // pushed for real, then pulled into an empty store by a client that leaves once the layers are listed
    await svc.push(name, { tag: 'v1' });
    await svc.remove(`${name}:v1`);
    await svc.remove('berth-test/busybox');
    const ac = new AbortController();
    const pullErr = await caught(svc.pull(name, { tag: 'v1', signal: ac.signal, progress: (m) => m.status === 'Pulling fs layer' && ac.abort() }));
    expect((pullErr as NodeJS.ErrnoException).code).toBe('ABORT_ERR');
    expect(await svc.list()).toEqual([]);
    expect(await svc.store.layers.list()).toEqual([]);
    await expectNoLeftovers(svc);
    // the same pull without the signal still works
    expect(await svc.pull(name, { tag: 'v1' })).toBe(img.id);
  });

  it('a second push says "Layer already exists"; another repository mounts the layer', async () => {
    const a = `${reg.host}/mount-a`;
    const b = `${reg.host}/mount-b`;
    await svc.tag(img.id, a, 'v1');
    await svc.push(a, { tag: 'v1' });
    const again: JSONMessage[] = [];
    await svc.push(a, { tag: 'v1', progress: (m) => again.push(m) });
    expect(again.map((m) => m.status)).toContain('Layer already exists');
    await svc.tag(img.id, b, 'v1');
    const mounted: JSONMessage[] = [];
    await svc.push(b, { progress: (m) => mounted.push(m) }); // no tag: all tags of the repository
    expect(mounted.map((m) => m.status)).toContain(`Mounted from ${reg.host}/mount-a`);
  });

  it('manifest lists: the host platform by default, --platform, and a clear error for a missing one', async () => {
    const name = `${reg.host}/multi`;
    await svc.tag(img.id, name, 'single');
    await svc.push(name, { tag: 'single' });
    const m = await fetch(`http://${reg.host}/v2/multi/manifests/single`, { headers: { Accept: MediaType.DockerManifest } });
    const mBody = Buffer.from(await m.arrayBuffer());
    // a second "arm64" image: another config on the same layer
    const cfg = JSON.parse((await svc.store.rawConfig(img.id)).toString());
    const armCfg = Buffer.from(JSON.stringify({ ...cfg, architecture: 'arm64', variant: 'v8' }));
    const armCfgDigest = sha256(armCfg);
    const put = async (url: string, body: Buffer, type: string) => {
      const r = await fetch(url, { method: 'PUT', headers: { 'Content-Type': type }, body: new Uint8Array(body) });
      expect(r.status).toBe(201);
    };
    const start = await fetch(`http://${reg.host}/v2/multi/blobs/uploads/`, { method: 'POST' });
    const loc = new URL(start.headers.get('location')!, `http://${reg.host}`);
    loc.searchParams.set('digest', armCfgDigest);
    await put(loc.toString(), armCfg, 'application/octet-stream');
    const amdManifest = JSON.parse(mBody.toString());
    const armManifest = Buffer.from(JSON.stringify({ ...amdManifest, config: { ...amdManifest.config, digest: armCfgDigest, size: armCfg.length } }));
    await put(`http://${reg.host}/v2/multi/manifests/arm`, armManifest, MediaType.DockerManifest);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [
          { mediaType: MediaType.DockerManifest, digest: sha256(armManifest), size: armManifest.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
          { mediaType: MediaType.DockerManifest, digest: sha256(mBody), size: mBody.length, platform: { os: 'linux', architecture: 'amd64' } },
        ],
      }),
    );
    await put(`http://${reg.host}/v2/multi/manifests/list`, index, MediaType.OciIndex);
    expect(await svc.pull(`${name}:list`, { platform: 'linux/amd64' })).toBe(img.id);
    const arm = await svc.pull(`${name}:list`, { platform: 'linux/arm64' });
    expect(arm).toBe(armCfgDigest);
    expect((await svc.inspect(arm)).Architecture).toBe('arm64');
    const e = await caught(svc.pull(`${name}:list`, { platform: 'linux/s390x' }));
    expect(e.message).toBe('no matching manifest for linux/s390x in the manifest list entries');
    expect(errorKind(e)).toBe('NotFound');
    const nf = await caught(svc.pull(`${name}:nope`));
    expect(nf.message).toBe(`manifest for ${name}:nope not found: manifest unknown: manifest unknown`);
  });

  it('two concurrent pulls of the same image unpack each layer once and agree', async () => {
    const name = `${reg.host}/concurrent`;
    await svc.tag(img.id, name, 'v1');
    await svc.push(name, { tag: 'v1' });
    const fresh = new ImageService({ dataRoot: path.join(base, 'fresh'), rootfsDriver: 'copy' });
    await fresh.init();
    try {
      const [a, b] = await Promise.all([fresh.pull(`${name}:v1`), fresh.pull(`${name}:v1`)]);
      expect(a).toBe(img.id);
      expect(b).toBe(img.id);
      expect(await fresh.store.layers.list()).toHaveLength(1);
      await expectNoLeftovers(fresh);
    } finally {
      await fresh.close();
    }
  });

  it('pulls an OCI manifest with a zstd layer on top of a gzip one', async () => {
    const { execFileSync } = await import('node:child_process');
    const reg1 = `http://${reg.host}/v2/ocizstd`;
    const upload = async (data: Buffer) => {
      const start = await fetch(`${reg1}/blobs/uploads/`, { method: 'POST' });
      const loc = new URL(start.headers.get('location')!, `http://${reg.host}`);
      loc.searchParams.set('digest', sha256(data));
      const r = await fetch(loc, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: new Uint8Array(data) });
      expect(r.status).toBe(201);
      return { digest: sha256(data), size: data.length };
    };
    const t1 = await makeTar([{ name: 'one', content: 'gzip layer' }]);
    const t2 = await makeTar([{ name: 'two', content: 'zstd layer' }, { name: '.wh.one' }]);
    const l1 = await upload(gzip(t1));
    const l2 = await upload(execFileSync('zstd', ['-c', '-q'], { input: t2 }));
    const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(t1), sha256(t2)] } }));
    const c = await upload(cfg);
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, ...c }, layers: [{ mediaType: MediaType.OciLayerGzip, ...l1 }, { mediaType: MediaType.OciLayerZstd, ...l2 }] }));
    const r = await fetch(`${reg1}/manifests/v1`, { method: 'PUT', headers: { 'Content-Type': MediaType.OciManifest }, body: new Uint8Array(manifest) });
    expect(r.status).toBe(201);
    const id = await svc.pull(`${reg.host}/ocizstd:v1`);
    expect(id).toBe(sha256(cfg));
    const chain = await svc.store.layerChain(id);
    expect(chain.map((l) => l.compression)).toEqual(['gzip', 'zstd']);
    expect(chain[1].whiteouts).toEqual(['one']);
    expect((await svc.inspect(id)).RepoDigests).toEqual([`${reg.host}/ocizstd@${sha256(manifest)}`]);
  });

  it('parallel downloads of a multi-layer image; a corrupted blob in the registry is refused and nothing is kept', async () => {
    // a 3-layer image built locally, pushed, removed, pulled back
    let parent = null as Digest | null;
    const diffIds: Digest[] = [];
    for (let i = 0; i < 3; i++) {
      const t = await makeTar([{ name: `layer${i}`, content: Buffer.alloc(100_000 + i, i + 1) }]);
      const meta = await svc.store.layers.register(streamOf(gzip(t)), parent);
      parent = meta.chainId;
      diffIds.push(meta.diffId);
    }
    const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } }));
    const id = await svc.store.createImage(cfg);
    const name = `${reg.host}/three`;
    await svc.tag(id, name, 'v1');
    await svc.push(name, { tag: 'v1' });
    await svc.remove(`${name}:v1`);
    expect(await svc.store.exists(id)).toBe(false);
    const msgs: JSONMessage[] = [];
    expect(await svc.pull(`${name}:v1`, { progress: (m) => msgs.push(m) })).toBe(id);
    expect(msgs.filter((m) => m.status === 'Pull complete')).toHaveLength(3);
    // corrupt the middle layer's blob in the registry's storage
    await svc.remove(`${name}:v1`);
    const manifest = JSON.parse(Buffer.from(await (await fetch(`http://${reg.host}/v2/three/manifests/v1`, { headers: { Accept: MediaType.DockerManifest } })).arrayBuffer()).toString());
    const victim = manifest.layers[1].digest.slice(7) as string;
    const file = path.join(reg.storage, 'docker/registry/v2/blobs/sha256', victim.slice(0, 2), victim, 'data');
    const orig = await fsp.readFile(file);
    const bad = Buffer.from(orig);
    bad[bad.length - 30] ^= 0xff;
    await fsp.writeFile(file, bad);
    try {
      const e = await caught(svc.pull(`${name}:v1`));
      expect(e.message).toMatch(/digest mismatch|invalid layer archive/);
      expect(await svc.store.exists(id)).toBe(false);
      await expectNoLeftovers(svc);
      expect((await svc.list()).map((x) => x.Id)).toEqual([img.id]);
    } finally {
      await fsp.writeFile(file, orig);
    }
    expect(shortId(id)).toHaveLength(12);
  });
});

describe.skipIf(registrySkip !== null)(`registry with htpasswd (Basic) auth${registrySkip ? ` (skipped: ${registrySkip})` : ''}`, () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ user: 'alice', password: 's3cret' });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('refuses anonymous and wrong credentials, works with the right ones (X-Registry-Auth shape)', async () => {
    const name = `${reg.host}/private`;
    await svc.tag(img.id, name, 'v1');
    let e = await caught(svc.push(name, { tag: 'v1' }));
    expect(errorKind(e)).toBe('Unauthorized');
    e = await caught(svc.push(name, { tag: 'v1', auth: { username: 'alice', password: 'nope' } }));
    expect(errorKind(e)).toBe('Unauthorized');
    await svc.push(name, { tag: 'v1', auth: { username: 'alice', password: 's3cret', serveraddress: reg.host } });
    await svc.remove(`${name}:v1`);
    e = await caught(svc.pull(`${name}:v1`));
    expect(errorKind(e)).toBe('Unauthorized');
    const auth = { auth: Buffer.from('alice:s3cret').toString('base64') };
    expect(await svc.pull(`${name}:v1`, { auth })).toBe(img.id);
  });

  it('POST /auth: login succeeds or is 401', async () => {
    expect(await svc.login({ username: 'alice', password: 's3cret', serveraddress: reg.host })).toEqual({ Status: 'Login Succeeded', IdentityToken: '' });
    const e = await caught(svc.login({ username: 'alice', password: 'bad', serveraddress: `http://${reg.host}` }));
    expect(errorKind(e)).toBe('Unauthorized');
  });
});

describe.skipIf(registrySkip !== null)(`registry behind Bearer-token auth${registrySkip ? ` (skipped: ${registrySkip})` : ''}`, () => {
  it('fetches tokens with the credentials and scopes, pushes and pulls', async () => {
    const reg = await startRegistry();
    const front = await startTokenFront(reg, 'bob', 'pw');
    try {
      const name = `${front.host}/tok/busybox`;
      await svc.tag(img.id, name, 'v1');
      expect(errorKind(await caught(svc.push(name, { tag: 'v1', auth: { username: 'bob', password: 'wrong' } })))).toBe('Unauthorized');
      await svc.push(name, { tag: 'v1', auth: { username: 'bob', password: 'pw' } });
      expect(front.tokenRequests.some((q) => q.includes('scope=repository%3Atok%2Fbusybox%3Apull%2Cpush') && q.includes('service=berth-test'))).toBe(true);
      await svc.remove(`${name}:v1`);
      expect(await svc.pull(`${name}:v1`, { auth: { username: 'bob', password: 'pw' } })).toBe(img.id);
    } finally {
      await front.stop();
      await reg.stop();
    }
  });
});
