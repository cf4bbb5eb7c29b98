/**
 * A running container whose config.v2.json is torn (issue 10 item 6, containers): berthd still
 * starts, leaves the container running, names it in `docker info` Warnings (the file and the
 * full ID), refuses `docker rm` without -f, and `docker rm -f <full ID>` removes everything
 * of it — the process, conmon, runc state, bundle, rootfs mount and overlay dir, record dir.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';
import { assertNothingLeft, inspectContainer } from './helpers/failpoints.js';

const skip = berthdSkipReason();
if (skip) console.warn(`unreadable-record e2e skipped: ${skip}`);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function infoWarnings(d: Berthd): Promise<string[]> {
  const r = await d.api('GET', '/info');
  expect(r.status).toBe(200);
  return (JSON.parse(r.body) as { Warnings: string[] }).Warnings;
}

describe.skipIf(skip !== null)(`a container whose record cannot be read${skip ? ` (skipped: ${skip})` : ''}`, () => {
  afterAll(removeTestImageTarball);

  it('is named in /info Warnings, keeps running, and rm -f <full ID> removes all of it', async () => {
    const daemons: Berthd[] = [];
    try {
      const first = await startBerthd({ args: ['--live-restore'] });
      daemons.push(first);
      await first.loadTestImage();
      const run = await first.docker(['run', '-d', '--name', 'torn', TEST_IMAGE, 'sleep', '1000']);
      expect(run.code, run.stderr).toBe(0);
      const id = run.stdout.trim();
      const pid = (await inspectContainer(first, id)).State.Pid;
      expect(pid).toBeGreaterThan(0);
      expect(await first.stop()).toBe(0);

      // A torn write: config.v2.json cut off a little after its Image field.
      const file = path.join(first.dataRoot, 'containers', id, 'config.v2.json');
      const text = fs.readFileSync(file, 'utf8');
      fs.writeFileSync(file, text.slice(0, text.indexOf('"Image":') + 100));

      const d = await startBerthd({ dir: first.dir, args: ['--live-restore'] });
      daemons.push(d);
      expect((await d.docker(['ps', '-aq'])).stdout).toBe('');
      const warnings = (await infoWarnings(d)).filter((w) => w.includes(id));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(file);
      expect(alive(pid)).toBe(true);

      const refused = await d.docker(['rm', id]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain('is running');
      expect(alive(pid)).toBe(true);

      const rm = await d.docker(['rm', '-f', id]);
      expect(rm.code, rm.stderr).toBe(0);
      for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
      expect(alive(pid)).toBe(false);
      expect((await infoWarnings(d)).filter((w) => w.includes(id))).toEqual([]);
      assertNothingLeft(d);
      // The name is free, and the daemon still runs containers.
      const again = await d.docker(['run', '--rm', '--name', 'torn', TEST_IMAGE, 'echo', 'fine']);
      expect([again.code, again.stdout]).toEqual([0, 'fine\n']);
    } finally {
      for (const d of daemons.reverse()) await d.cleanup();
    }
  }, 120_000);
});
