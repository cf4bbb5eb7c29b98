/**
 * docs/composing.md's custom daemon, run word for word as a process: its `doc-test=` blocks
 * (the plugin module and custom-berthd.mjs) are extracted from the Markdown into a temp
 * project outside the repository that links the built @berth packages, as an installed
 * project has them. `--help` lists the build's own flag as the doc shows; berthd's bin with the
 * doc's daemon.json and a refused config key exits 1 with the doc's message; and, as root with
 * runc, the custom daemon refuses a `docker create` without the label with the doc's text,
 * runs a labelled container, and on SIGTERM (or SIGINT) exits 0 leaving no socket, pidfile, lock, monitor
 * or container process behind.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { docTestBlock, docTestBlocks } from '@berth/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT, TEST_IMAGE, berthdSkipReason, startBerthd, type Berthd } from './helpers/berthd.js';

const blocks = docTestBlocks(path.join(REPO_ROOT, 'docs/composing.md'));
const notBuilt = fs.existsSync(path.join(REPO_ROOT, 'packages/daemon/dist/berthd-main.js')) ? null : 'berthd is not built (pnpm build)';
const skipReason = berthdSkipReason();

let project: string | undefined;
let daemon: Berthd | undefined;
afterEach(async () => {
  await daemon?.cleanup();
  daemon = undefined;
  if (project) fs.rmSync(project, { recursive: true, force: true });
  project = undefined;
});

/** A temp project outside the repo with the doc's files and node_modules links to the built packages. */
function makeProject(): string {
  project = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-composing-'));
  for (const pkg of ['core', 'daemon']) {
    fs.mkdirSync(path.join(project, 'node_modules/@berth'), { recursive: true });
    fs.symlinkSync(path.join(REPO_ROOT, 'packages', pkg), path.join(project, 'node_modules/@berth', pkg));
  }
  for (const name of ['require-label.mjs', 'custom-berthd.mjs', 'daemon.json']) fs.writeFileSync(path.join(project, name), docTestBlock(blocks, name));
  return project;
}

/** Process ids whose command line mentions `s` (conmon and runc of a berthd carry its exec root). */
function processesMentioning(s: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', s], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe('docs/composing.md as a process', () => {
  it.skipIf(notBuilt !== null)(`custom-berthd.mjs --help lists berthd's flags and then the build's own, as the doc shows${notBuilt ? ` (skipped: ${notBuilt})` : ''}`, () => {
    const dir = makeProject();
    const r = spawnSync(process.execPath, [path.join(dir, 'custom-berthd.mjs'), '--help'], { cwd: dir, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--data-root string');
    expect(r.stdout).toContain(docTestBlock(blocks, 'custom-help.txt'));
  });

  it.skipIf(!!skipReason)(`berthd with the doc's daemon.json and a refused config key exits 1 with the doc's message ${skipReason ? `(skipped: ${skipReason})` : ''}`, async () => {
    const dir = makeProject();
    const json = fs.readFileSync(path.join(dir, 'daemon.json'), 'utf8');
    fs.writeFileSync(path.join(dir, 'daemon.json'), json.replace('"label": "owner"', '"label": "Owner!"'));
    daemon = await startBerthd({ args: ['--config-file', path.join(dir, 'daemon.json')], expectFailure: true });
    expect((await daemon.exited()).code).toBe(1);
    expect(daemon.log()).toContain(docTestBlock(blocks, 'bad-config.txt'));
    expect(fs.existsSync(daemon.socket)).toBe(false);
    expect(fs.existsSync(daemon.pidfile)).toBe(false);
  });

  it.skipIf(!!skipReason)(`the custom daemon refuses an unlabelled create with the doc's text, runs a labelled container, and SIGTERM leaves nothing behind ${skipReason ? `(skipped: ${skipReason})` : ''}`, async () => {
    const dir = makeProject();
    daemon = await startBerthd({ bin: path.join(dir, 'custom-berthd.mjs'), args: ['--required-label', 'owner', '--shutdown-timeout', '1'] });
    await daemon.loadTestImage();
    const refused = await daemon.docker(['create', TEST_IMAGE, 'true']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(docTestBlock(blocks, 'create-refused.txt'));
    const run = await daemon.docker(['run', '-d', '--label', 'owner=me', TEST_IMAGE, 'sleep', '300']);
    expect(run.code, run.stderr).toBe(0);
    const pid = JSON.parse((await daemon.api('GET', `/containers/${run.stdout.trim()}/json`)).body).State.Pid as number;
    expect(pid).toBeGreaterThan(0);
    expect(processesMentioning(daemon.execRoot).length).toBeGreaterThan(0); // its monitor
    expect(fs.existsSync(daemon.pidfile)).toBe(true);

    expect(await daemon.stop('SIGTERM')).toBe(0);
    expect(fs.existsSync(daemon.socket)).toBe(false);
    expect(fs.existsSync(daemon.pidfile)).toBe(false);
    expect(fs.existsSync(path.join(daemon.dataRoot, 'berthd.lock'))).toBe(false);
    expect(processesMentioning(daemon.execRoot)).toEqual([]);
    expect(fs.existsSync(`/proc/${pid}`)).toBe(false);
  });

  it.skipIf(!!skipReason)(`the custom daemon on SIGINT (Ctrl-C) exits 0 as well, leaving no socket, pidfile or lock ${skipReason ? `(skipped: ${skipReason})` : ''}`, async () => {
    const dir = makeProject();
    daemon = await startBerthd({ bin: path.join(dir, 'custom-berthd.mjs') });
    expect(fs.existsSync(path.join(daemon.dataRoot, 'berthd.lock'))).toBe(true);
    expect(await daemon.stop('SIGINT')).toBe(0);
    expect(fs.existsSync(daemon.socket)).toBe(false);
    expect(fs.existsSync(daemon.pidfile)).toBe(false);
    expect(fs.existsSync(path.join(daemon.dataRoot, 'berthd.lock'))).toBe(false);
  });
});
