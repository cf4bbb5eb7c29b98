/**
 * Docker's /volumes API over HTTP (routes/volumes.ts) and /system/df's volumes: an in-process
 * berthd on temp dirs with the built-in volumes plugin and a FakeRuntime backend (no runc).
 * Status codes and texts as dockerd's; prune's API-version rule (anonymous only from 1.42);
 * a build without the volumes plugin has no /volumes routes and answers volumes with 501.
 */
import path from 'node:path';
import { FakeRuntime } from '@berth/testing';
import { describe, expect, it } from 'vitest';
import { emptyBuild, type DaemonConfig } from '../src/index.js';
import { berthdPerTest, unixRequest as request } from './helpers/temp-berthd.js';

const berthd = berthdPerTest('berth-vol-');

let dir = '';

async function start(extra: Partial<DaemonConfig> = {}): Promise<string> {
  const d = await berthd.startWithBackend(new FakeRuntime({ name: 'fake', runtimes: ['fake'] }), extra);
  dir = d.dir;
  return d.sock;
}

const filters = (f: Record<string, string[]>) => encodeURIComponent(JSON.stringify(f));

describe('/volumes', () => {
  it('create (201, an existing name returned as is), inspect, list with filters, bad names 400, unknown 404', async () => {
    const sock = await start();
    const made = await request(sock, 'POST', '/volumes/create', { Name: 'v1', Labels: { a: 'b' } });
    expect(made.status).toBe(201);
    expect(made.json()).toMatchObject({ Name: 'v1', Driver: 'local', Scope: 'local', Labels: { a: 'b' }, Options: {}, Mountpoint: path.join(dir, 'data', 'volumes', 'v1', '_data') });
    const again = await request(sock, 'POST', '/volumes/create', { Name: 'v1' });
    expect(again.json()).toEqual(made.json());
    expect((await request(sock, 'GET', '/volumes/v1')).json()).toEqual(made.json());
    const bad = await request(sock, 'POST', '/volumes/create', { Name: '../x' });
    expect(bad.status).toBe(400);
    expect(bad.json().message).toContain('includes invalid characters for a local volume name');
    const missing = await request(sock, 'GET', '/volumes/nope');
    expect(missing.status).toBe(404);
    expect(missing.json().message).toBe('get nope: no such volume');
    expect((await request(sock, 'DELETE', '/volumes/nope')).status).toBe(404);
    expect((await request(sock, 'DELETE', '/volumes/nope?force=1')).status).toBe(204);
    await request(sock, 'POST', '/volumes/create', { Name: 'other' });
    const list = await request(sock, 'GET', `/volumes?filters=${filters({ label: ['a=b'] })}`);
    expect(list.json()).toEqual({ Volumes: [made.json()], Warnings: null });
    expect((await request(sock, 'GET', `/volumes?filters=${filters({ bogus: ['x'] })}`)).status).toBe(400);
  });

  it('a container\'s volume: inspect Mounts, in use → 409 naming the container, /system/df UsageData; prune keeps named volumes from API 1.42, not before', async () => {
    const sock = await start();
    const c = await request(sock, 'POST', '/containers/create?name=user', { Image: 'plain', Cmd: ['true'], HostConfig: { Runtime: 'fake', Binds: ['data:/data'] } });
    expect(c.status).toBe(201);
    const id = c.json().Id as string;
    const mounts = (await request(sock, 'GET', `/containers/${id}/json`)).json().Mounts;
    expect(mounts).toEqual([{ Type: 'volume', Name: 'data', Source: path.join(dir, 'data', 'volumes', 'data', '_data'), Destination: '/data', Driver: 'local', Mode: 'z', RW: true, Propagation: '' }]);
    const rm = await request(sock, 'DELETE', '/volumes/data');
    expect(rm.status).toBe(409);
    expect(rm.json().message).toBe(`remove data: volume is in use - [${id}]`);
    const df = (await request(sock, 'GET', '/v1.45/system/df')).json();
    expect(df.Volumes).toEqual([expect.objectContaining({ Name: 'data', UsageData: { Size: 0, RefCount: 1 } })]);
    await request(sock, 'POST', '/volumes/create', { Name: 'unused' });
    expect((await request(sock, 'POST', '/volumes/prune')).json()).toEqual({ VolumesDeleted: [], SpaceReclaimed: 0 });
    expect((await request(sock, 'POST', '/v1.41/volumes/prune')).json()).toEqual({ VolumesDeleted: ['unused'], SpaceReclaimed: 0 });
    expect((await request(sock, 'DELETE', `/containers/${id}`)).status).toBe(204);
    expect((await request(sock, 'POST', `/volumes/prune?filters=${filters({ all: ['true'] })}`)).json()).toEqual({ VolumesDeleted: ['data'], SpaceReclaimed: 0 });
  });

  it('a build without the volumes plugin: no /volumes routes (404) and a named volume at create → 501', async () => {
    const sock = await start({ build: { ...emptyBuild(), builtins: { volumes: false } } });
    expect((await request(sock, 'GET', '/volumes')).status).toBe(404);
    const c = await request(sock, 'POST', '/containers/create', { Image: 'plain', Cmd: ['true'], HostConfig: { Runtime: 'fake', Binds: ['data:/data'] } });
    expect(c.status).toBe(501);
  });
});
