/**
 * docs/composing.md, run word for word: its `doc-test=` blocks are extracted from the Markdown
 * and run here — the plugin module and the daemon.json through berthd's own parser and an
 * in-process berthd (the refusal and the start-up error say exactly what the doc prints), and
 * the embedding example as a module (it prints what the doc says). The custom daemon
 * (custom-berthd.mjs) runs as a process in test/e2e/composing-doc.e2e.test.ts. No runc needed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { docTestBlock, docTestBlocks } from '@berth/testing';
import { describe, expect, it, vi } from 'vitest';
import { failedToStart, parseBerthdArgs, startBerthd } from '../src/index.js';
import { berthdPerTest, unixRequest as request } from './helpers/temp-berthd.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const DOC = path.join(REPO, 'docs/composing.md');
const blocks = docTestBlocks(DOC);
const berthd = berthdPerTest('berth-doc-');

/** A temp dir where the doc's imports resolve, as in a project that installed them. */
function project(): string {
  const dir = berthd.dir();
  const links: Record<string, string> = {
    '@berth/core': 'packages/core',
    '@berth/image-store': 'packages/image-store',
    '@berth/runtime-oci': 'packages/runtime-oci',
    'reflect-metadata': 'packages/core/node_modules/reflect-metadata',
  };
  for (const [name, target] of Object.entries(links)) {
    fs.mkdirSync(path.dirname(path.join(dir, 'node_modules', name)), { recursive: true });
    fs.symlinkSync(fs.realpathSync(path.join(REPO, target)), path.join(dir, 'node_modules', name));
  }
  return dir;
}

/** berthd's flags putting every path under `dir` (the doc's daemon.json names none). */
function flags(dir: string): string[] {
  return ['-H', `unix://${dir}/berth.sock`, '--data-root', `${dir}/data`, '--exec-root', `${dir}/exec`, '--pidfile', `${dir}/berthd.pid`, '--log-level', 'error', '--berth-rootfs-dir', `${dir}/rootfs`];
}

describe('docs/composing.md', () => {
  it('marks every code example as a doc-test block (nothing in it goes unrun)', () => {
    const fences = fs.readFileSync(DOC, 'utf8').split('\n').filter((l) => /^```(js|ts|mjs|json|sh)\b/.test(l));
    expect(fences.filter((l) => !l.includes('doc-test='))).toEqual([]);
    expect([...blocks.keys()]).toEqual(expect.arrayContaining(['require-label.mjs', 'daemon.json', 'create-refused.txt', 'bad-config.txt', 'custom-berthd.mjs', 'custom-help.txt', 'embed.mjs', 'embed-output.txt']));
  });

  it('the build file: berthd with the plugin, apparmor off; a create without the label gets the doc\'s error', async () => {
    const dir = project();
    fs.writeFileSync(path.join(dir, 'require-label.mjs'), docTestBlock(blocks, 'require-label.mjs'));
    fs.writeFileSync(path.join(dir, 'daemon.json'), docTestBlock(blocks, 'daemon.json'));
    fs.mkdirSync(path.join(dir, 'rootfs/plain'), { recursive: true });
    await berthd.start(parseBerthdArgs(['--config-file', path.join(dir, 'daemon.json'), ...flags(dir)]).config);
    const sock = path.join(dir, 'berth.sock');
    const names = (await request(sock, 'GET', '/info')).json().BerthPlugins.map((p: { Name: string; Status: string }) => `${p.Name}:${p.Status}`);
    expect(names).toContain('require-label:loaded');
    expect(names.some((n: string) => n.startsWith('apparmor:'))).toBe(false);
    const refused = await request(sock, 'POST', '/containers/create', { Image: 'plain', Cmd: ['true'] });
    expect(refused.status).toBe(400);
    expect(`Error response from daemon: ${refused.json().message}\n`).toBe(docTestBlock(blocks, 'create-refused.txt'));
    const ok = await request(sock, 'POST', '/containers/create', { Image: 'plain', Cmd: ['true'], Labels: { owner: 'me' } });
    expect(ok.status).toBe(201);
  });

  it('a refused config key: berthd does not start and says what the doc says', async () => {
    const dir = project();
    fs.writeFileSync(path.join(dir, 'require-label.mjs'), docTestBlock(blocks, 'require-label.mjs'));
    const json = docTestBlock(blocks, 'daemon.json');
    expect(json).toContain('"label": "owner"');
    fs.writeFileSync(path.join(dir, 'daemon.json'), json.replace('"label": "owner"', '"label": "Owner!"'));
    const config = parseBerthdArgs(['--config-file', path.join(dir, 'daemon.json'), ...flags(dir)]).config;
    const err = await startBerthd(config, { handleSignals: false }).then(
      () => expect.unreachable('berthd started'),
      (e: unknown) => e,
    );
    expect(failedToStart(err)).toBe(docTestBlock(blocks, 'bad-config.txt'));
    expect(fs.existsSync(path.join(dir, 'berth.sock'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'berthd.pid'))).toBe(false);
  });

  it('the embedding example prints what the doc says', async () => {
    const dir = project();
    const file = path.join(dir, 'embed.mjs');
    fs.writeFileSync(file, docTestBlock(blocks, 'embed.mjs'));
    const printed: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void printed.push(a.join(' ')));
    try {
      await import(pathToFileURL(file).href);
    } finally {
      log.mockRestore();
    }
    expect(printed.join('\n') + '\n').toBe(docTestBlock(blocks, 'embed-output.txt'));
  });
});
