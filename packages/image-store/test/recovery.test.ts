/**
 * Corrupt image-store files at start-up (issue 10 item 6): a truncated repositories.json, a
 * bad imagedb entry, a bad config blob, a bad layer meta.json. The store starts, every bad
 * entry is named in a warning, and what can be kept is kept.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalImageStore } from '../src/images.js';
import { parseReference } from '../src/reference.js';
import { dataRootPerTest, makeTar, streamOf } from './helpers.js';

const per = dataRootPerTest();

async function openStore(): Promise<LocalImageStore> {
  const s = per.track(new LocalImageStore(per.dataRoot()));
  await s.init();
  return s;
}

async function image(store: LocalImageStore, content: string): Promise<`sha256:${string}`> {
  const meta = await store.layers.register(streamOf(await makeTar([{ name: 'f', content }])), null);
  const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [meta.diffId] } }));
  return store.createImage(cfg);
}

const imagedbFile = (store: LocalImageStore, id: string) => path.join(store.root, 'imagedb', `${id.slice(7)}.json`);
const reposFile = (store: LocalImageStore) => path.join(store.root, 'repositories.json');

describe('repositories.json', () => {
  it('truncated: references come back from the previous generation, the bad file is kept and named', async () => {
    const s1 = await openStore();
    const a = await image(s1, 'a');
    const b = await image(s1, 'b');
    await s1.addReference(parseReference('one:1'), a);
    await s1.addReference(parseReference('two:2'), b);
    const text = await fsp.readFile(reposFile(s1), 'utf8');
    await fsp.writeFile(reposFile(s1), text.slice(0, text.length - 7));

    const s2 = await openStore();
    // the generation before the last change: one:1 only
    expect(await s2.resolve('one:1')).toBe(a);
    await expect(s2.resolve('two:2')).rejects.toThrow(/No such image/);
    // both images are still there (b untagged)
    expect((await s2.ids()).sort()).toEqual([a, b].sort());
    expect(s2.warnings).toHaveLength(1);
    expect(s2.warnings[0]).toContain(reposFile(s2));
    expect(s2.warnings[0]).toContain('repositories.json.bak');
    const kept = (await fsp.readdir(s2.root)).filter((n) => n.startsWith('repositories.json.corrupt-'));
    expect(kept).toHaveLength(1);
    expect(await fsp.readFile(path.join(s2.root, kept[0]!), 'utf8')).toBe(text.slice(0, text.length - 7));
    // the recovered references were written back: a third start is clean
    const s3 = await openStore();
    expect(s3.warnings).toEqual([]);
    expect(await s3.resolve('one:1')).toBe(a);
  });

  it('unreadable with no readable previous generation: starts with no references, images kept', async () => {
    const s1 = await openStore();
    const a = await image(s1, 'a');
    await s1.addReference(parseReference('one:1'), a);
    await fsp.writeFile(reposFile(s1), '');
    await fsp.rm(`${reposFile(s1)}.bak`, { force: true });
    const s2 = await openStore();
    expect(s2.allReferences()).toEqual([]);
    expect(await s2.ids()).toEqual([a]);
    expect(s2.warnings).toEqual([expect.stringMatching(/repositories\.json is unreadable .*no image references/)]);
    // tagging works again and is saved
    await s2.addReference(parseReference('one:1'), a);
    expect(await (await openStore()).resolve('one:1')).toBe(a);
  });

  it('one bad entry is dropped and named; the others stay', async () => {
    const s1 = await openStore();
    const a = await image(s1, 'a');
    await s1.addReference(parseReference('one:1'), a);
    const raw = JSON.parse(await fsp.readFile(reposFile(s1), 'utf8')) as { Repositories: Record<string, Record<string, string>> };
    raw.Repositories['docker.io/library/one']!['NOT A REF'] = a;
    raw.Repositories['docker.io/library/one']!['docker.io/library/one:2'] = 'sha256:nope';
    await fsp.writeFile(reposFile(s1), JSON.stringify(raw));
    const s2 = await openStore();
    expect(await s2.resolve('one:1')).toBe(a);
    expect(s2.allReferences().map((r) => r.ref.tag)).toEqual(['1']);
    expect(s2.warnings).toHaveLength(2);
    expect(s2.warnings.join('\n')).toContain('NOT A REF');
    expect(s2.warnings.join('\n')).toContain('one:2');
  });
});

describe('imagedb', () => {
  it('an unreadable record with a good config is rebuilt: the image and its tags stay', async () => {
    const s1 = await openStore();
    const a = await image(s1, 'a');
    const b = await image(s1, 'b');
    await s1.addReference(parseReference('one:1'), a);
    await fsp.writeFile(imagedbFile(s1, a), '{"id":"sha256:');
    const s2 = await openStore();
    expect(await s2.resolve('one:1')).toBe(a);
    expect((await s2.get(a)).meta.id).toBe(a);
    expect((await s2.get(b)).meta.id).toBe(b);
    expect(s2.warnings).toEqual([expect.stringContaining(imagedbFile(s2, a))]);
    expect(s2.warnings[0]).toMatch(/rebuilt from the image config/);
  });

  it('an image whose config blob is corrupt is skipped and named; loading it again repairs it', async () => {
    const s1 = await openStore();
    const a = await image(s1, 'a');
    const b = await image(s1, 'b');
    await s1.addReference(parseReference('one:1'), a);
    await s1.addReference(parseReference('two:1'), b);
    const cfg = await s1.rawConfig(a);
    await fsp.writeFile(s1.blobs.path(a), cfg.subarray(0, 10));
    const s2 = await openStore();
    expect(await s2.ids()).toEqual([b]);
    expect(await s2.resolve('two:1')).toBe(b);
    await expect(s2.resolve('one:1')).rejects.toThrow(/No such image/);
    expect(s2.warnings).toEqual([expect.stringContaining(`skipped image ${a}`)]);
    // the same config again: the image is back
    expect(await s2.createImage(cfg)).toBe(a);
    expect((await s2.get(a)).config.os).toBe('linux');
  });

  it('a record that goes bad while the daemon runs: a store that has it in memory keeps serving it, a first read and the next start name the file', async () => {
    const s1 = await openStore();
    const a = await image(s1, 'a');
    await fsp.writeFile(imagedbFile(s1, a), '{');
    // only the store writes imagedb: what it wrote (or read) is the record (issue 18: no re-read per create)
    expect((await s1.get(a)).meta.id).toBe(a);
    const unread = per.track(new LocalImageStore(per.dataRoot()));
    await expect(unread.get(a)).rejects.toThrow(imagedbFile(s1, a));
    const s2 = await openStore();
    expect(s2.warnings).toEqual([expect.stringContaining(imagedbFile(s2, a))]);
  });

  it('temp files of interrupted atomic writes are removed at start-up', async () => {
    const s1 = await openStore();
    await fsp.writeFile(path.join(s1.root, 'imagedb', '.tmp-abc.json-123456'), '{');
    await fsp.writeFile(path.join(s1.root, '.tmp-repositories.json-123456'), '{');
    const s2 = await openStore();
    expect((await fsp.readdir(path.join(s2.root, 'imagedb'))).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    expect((await fsp.readdir(s2.root)).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    expect(s2.warnings).toEqual([]);
  });
});

describe('layers', () => {
  it('a layer whose meta.json is unreadable is moved aside and named; registering it again works', async () => {
    const s1 = await openStore();
    const t = await makeTar([{ name: 'f', content: 'a' }]);
    const meta = await s1.layers.register(streamOf(t), null);
    await fsp.writeFile(path.join(s1.layers.layerDir(meta.chainId), 'meta.json'), '{"chainId"');
    const s2 = await openStore();
    expect(await s2.layers.has(meta.chainId)).toBe(false);
    expect(s2.warnings).toEqual([expect.stringContaining(`layer ${meta.chainId.slice(7)} skipped`)]);
    const aside = (await fsp.readdir(s2.layers.dir)).filter((n) => n.startsWith('corrupt-'));
    expect(aside).toHaveLength(1);
    const again = await s2.layers.register(streamOf(t), null);
    expect(again.chainId).toBe(meta.chainId);
    expect(await s2.layers.list()).toHaveLength(1);
  });
});
