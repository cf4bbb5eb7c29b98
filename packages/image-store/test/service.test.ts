import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { errorKind, filtersFrom, shortId } from '@berth/core';
import type { JSONMessage } from '../src/progress.js';
import { ImageService, type ContainerImageUsage } from '../src/service.js';
import { buildTestImage, caught, gzip, listTree, makeTar, streamOf, tempDir } from './helpers.js';
import { validateDefinition } from '@berth/testing';

let img: Awaited<ReturnType<typeof buildTestImage>>;
let base: string;
let svc: ImageService;
let containers: ContainerImageUsage[];
/** Docker's filters from their JSON form (every key allowed here: the service itself refuses unknown ones). */
const filters = (o: Record<string, string[] | Record<string, boolean>>) => filtersFrom(o, Object.keys(o));

beforeAll(async () => {
  img = await buildTestImage();
}, 120_000);
beforeEach(async () => {
  base = await tempDir();
  containers = [];
  svc = new ImageService({ dataRoot: path.join(base, 'data'), containers: () => containers, rootfsDriver: 'copy' });
  await svc.init();
  await svc.load(createReadStream(img.saveTar));
});
afterEach(async () => {
  await svc.close();
  await fsp.rm(base, { recursive: true, force: true });
});

async function importOne(repo?: string, changes: string[] = [], content = 'x'): Promise<string> {
  const t = await makeTar([{ name: 'file', content }]);
  return svc.import(streamOf(gzip(t)), { ...(repo ? { repo } : {}), changes });
}

describe('list, inspect, history (shapes from the swagger)', () => {
  it('lists the loaded image with Docker fields', async () => {
    const list = await svc.list();
    expect(list).toHaveLength(1);
    expect(validateDefinition('ImageSummary', list[0])).toBe('');
    expect(validateDefinition('ImageSummary', { ...list[0], Created: 'yesterday' })).toMatch(/Created/);
    expect(list[0]).toMatchObject({ Id: img.id, RepoTags: ['berth-test/busybox:latest'], RepoDigests: [], ParentId: '', Created: 0, SharedSize: -1, Containers: -1, Labels: {} });
    expect(list[0].Size).toBeGreaterThan(1_000_000);
  });

  it('inspects and shows history', async () => {
    const i = await svc.inspect('berth-test/busybox');
    expect(validateDefinition('ImageInspect', i)).toBe('');
    expect(i).toMatchObject({ Id: img.id, Os: 'linux', RootFS: { Type: 'layers', Layers: [img.diffId] }, Config: { Cmd: ['sh'] } });
    const h = await svc.history(img.id);
    expect(h).toHaveLength(1);
    expect(validateDefinition('ImageHistoryResponseItem', h[0])).toBe('');
    expect(h[0]).toMatchObject({ Id: img.id, Tags: ['berth-test/busybox:latest'], CreatedBy: expect.stringContaining('busybox-static') });
    const e = await caught(svc.inspect('nope'));
    expect(e.message).toBe('No such image: nope');
    expect(errorKind(e)).toBe('NotFound');
  });

  it('filters: dangling, reference, label, before/since; unknown filters are refused', async () => {
    const dangling = await importOne(undefined, ['LABEL team=a']);
    await new Promise((r) => setTimeout(r, 1100));
    const labelled = await importOne('x/labelled:1', ['LABEL team=b', 'LABEL tier=web'], 'y');
    expect((await svc.list({ filters: filters({ dangling: ['true'] }) })).map((i) => i.Id)).toEqual([dangling]);
    expect((await svc.list({ filters: filters({ dangling: { false: true } }) })).map((i) => i.Id).sort()).toEqual([img.id, labelled].sort());
    expect((await svc.list({ filters: filters({ reference: ['x/*'] }) })).map((i) => i.Id)).toEqual([labelled]);
    expect((await svc.list({ filters: filters({ label: ['team'] }) })).map((i) => i.Id).sort()).toEqual([dangling, labelled].sort());
    expect((await svc.list({ filters: filters({ label: ['team=b', 'tier=web'] }) })).map((i) => i.Id)).toEqual([labelled]);
    expect((await svc.list({ filters: filters({ since: [dangling] }) })).map((i) => i.Id)).toEqual([labelled]);
    expect((await svc.list({ filters: filters({ before: [labelled] }) })).map((i) => i.Id).sort()).toEqual([img.id, dangling].sort());
    const e = await caught(svc.list({ filters: filters({ bogus: ['1'] }) }));
    expect(e.message).toBe("invalid filter 'bogus'");
    expect(errorKind(e)).toBe('InvalidParameter');
  });
});

describe('tag and delete (dockerd ImageDelete semantics)', () => {
  it('untags when other tags remain, then deletes with the last one', async () => {
    await svc.tag('berth-test/busybox', 'mine', 'v1');
    expect((await svc.inspect(img.id)).RepoTags.sort()).toEqual(['berth-test/busybox:latest', 'mine:v1']);
    expect(await svc.remove('mine:v1')).toEqual([{ Untagged: 'mine:v1' }]);
    const res = await svc.remove('berth-test/busybox');
    expect(res[0]).toEqual({ Untagged: 'berth-test/busybox:latest' });
    expect(res).toContainEqual({ Deleted: img.id });
    expect(await svc.list()).toEqual([]);
    expect(await svc.store.layers.list()).toEqual([]);
    expect(await svc.store.blobs.list()).toEqual([]);
  });

  it('an image used by a stopped container: conflict (must be forced); force deletes it', async () => {
    const cid = 'c'.repeat(64);
    containers = [{ id: cid, image: img.id, running: false }];
    let e = await caught(svc.remove(img.id));
    expect(e.message).toBe(`conflict: unable to delete ${shortId(img.id)} (must be forced) - image is being used by stopped container ${shortId(cid)}`);
    expect(errorKind(e)).toBe('Conflict');
    e = await caught(svc.remove('berth-test/busybox'));
    expect(e.message).toBe(`conflict: unable to remove repository reference "berth-test/busybox" (must force) - container ${shortId(cid)} is using its referenced image ${shortId(img.id)}`);
    const res = await svc.remove(img.id, { force: true });
    expect(res).toEqual([{ Untagged: 'berth-test/busybox:latest' }, { Deleted: img.id }, { Deleted: img.diffId }]);
  });

  it('an image used by a running container: conflict (cannot be forced)', async () => {
    const cid = 'd'.repeat(64);
    containers = [{ id: cid, image: img.id, running: true }];
    const e = await caught(svc.remove(img.id, { force: true }));
    expect(e.message).toBe(`conflict: unable to delete ${shortId(img.id)} (cannot be forced) - image is being used by running container ${shortId(cid)}`);
    expect(errorKind(e)).toBe('Conflict');
    expect(await svc.imageId('berth-test/busybox')).toBe(img.id);
  });

  it('an ID with several tags in different repositories must be forced', async () => {
    await svc.tag(img.id, 'other/repo', 'x');
    const e = await caught(svc.remove(img.id.slice(7, 19)));
    expect(e.message).toBe(`conflict: unable to delete ${shortId(img.id)} (must be forced) - image is referenced in multiple repositories`);
    const res = await svc.remove(img.id.slice(7, 19), { force: true });
    expect(res.filter((r) => r.Untagged).map((r) => r.Untagged).sort()).toEqual(['berth-test/busybox:latest', 'other/repo:x']);
  });

  it('tag refuses bad names and unknown sources', async () => {
    expect((await caught(svc.tag('nope', 'a', 'b'))).message).toBe('No such image: nope');
    expect(errorKind(await caught(svc.tag(img.id, 'UPPER', 'x')))).toBe('InvalidParameter');
  });

  it('prune removes dangling images only (all unused with dangling=false)', async () => {
    const d = await importOne();
    const res = await svc.prune();
    expect(res.ImagesDeleted).toContainEqual({ Deleted: d });
    expect(res.SpaceReclaimed).toBe(1);
    expect((await svc.list()).map((i) => i.Id)).toEqual([img.id]);
    expect((await svc.prune()).ImagesDeleted).toBeNull();
    containers = [{ id: 'e'.repeat(64), image: img.id, running: false }];
    expect((await svc.prune({ filters: filters({ dangling: ['false'] }) })).ImagesDeleted).toBeNull();
    containers = [];
    const all = await svc.prune({ filters: filters({ dangling: ['false'] }) });
    expect(all.ImagesDeleted).toContainEqual({ Deleted: img.id });
  });
});

describe('import and commit', () => {
  it('docker import with changes, message and a tag', async () => {
    const t = await makeTar([{ name: 'bin/', type: 'directory' }, { name: 'bin/tool', content: '#!/bin/sh\n', mode: 0o755 }]);
    const msgs: JSONMessage[] = [];
    const id = await svc.import(streamOf(gzip(t)), { repo: 'imported', tag: 'v1', message: 'hello', changes: ['CMD ["/bin/tool"]', 'ENV A=1'], progress: (m) => msgs.push(m) });
    expect(msgs).toEqual([{ status: id }]);
    const i = await svc.inspect('imported:v1');
    expect(i.Config).toMatchObject({ Cmd: ['/bin/tool'], Env: ['A=1'] });
    expect(i.Comment).toBe('hello');
    expect((await svc.history('imported:v1'))[0].Comment).toBe('hello');
    expect(errorKind(await caught(svc.import(streamOf(t), { changes: ['RUN x'] })))).toBe('InvalidParameter');
  });

  it('commit: the container changes become a layer on top of its image, with the container config', async () => {
    const cid = 'f'.repeat(64);
    await svc.createRootfs(cid, 'berth-test/busybox');
    const root = await svc.mountRootfs(cid);
    await fsp.writeFile(path.join(root, 'tmp/committed'), 'yes');
    await fsp.rm(path.join(root, 'etc/group'));
    const id = await svc.commit({ containerId: cid, image: 'berth-test/busybox', config: { Cmd: ['cat', '/tmp/committed'], Env: ['PATH=/bin'] }, repo: 'committed', tag: 'v1', author: 'me', comment: 'c', changes: ['LABEL k=v'] });
    const i = await svc.inspect('committed:v1');
    expect(i.Parent).toBe(img.id);
    expect(i.RootFS.Layers).toHaveLength(2);
    expect(i.RootFS.Layers[0]).toBe(img.diffId);
    expect(i.Config).toMatchObject({ Cmd: ['cat', '/tmp/committed'], Labels: { k: 'v' } });
    expect(i.Author).toBe('me');
    const h = await svc.history(id);
    expect(h.map((x) => x.Id)).toEqual([id, img.id]);
    expect(h[0]).toMatchObject({ CreatedBy: 'cat /tmp/committed', Comment: 'c' });
    expect(await svc.containerChanges(cid)).toEqual([
      { Path: '/etc', Kind: 0 },
      { Path: '/etc/group', Kind: 2 },
      { Path: '/tmp', Kind: 0 },
      { Path: '/tmp/committed', Kind: 1 },
    ]);
    // a container of the committed image sees the change
    const cid2 = '1'.repeat(64);
    await svc.createRootfs(cid2, 'committed:v1');
    const root2 = await svc.mountRootfs(cid2);
    expect(await fsp.readFile(path.join(root2, 'tmp/committed'), 'utf8')).toBe('yes');
    expect(await listTree(path.join(root2, 'etc'))).toEqual(['passwd']);
    // the parent cannot go while its child exists
    const e = await caught(svc.remove(img.id, { force: true }));
    expect(e.message).toBe(`conflict: unable to delete ${shortId(img.id)} (cannot be forced) - image has dependent child images`);
    await svc.removeRootfs(cid);
    await svc.removeRootfs(cid2);
  });
});
