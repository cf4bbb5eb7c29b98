/**
 * CRI CheckpointContainer (checkpoint.ts) over gRPC on FakeRuntime, which checkpoints without
 * CRIU: the tar archive at `location` (listable with `tar -t`, the engine's checkpoint under
 * checkpoint/ plus config.dump/spec.dump), the container still running afterwards, the refusals
 * and their gRPC codes, the timeout, and nothing left in the target directory when it fails.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { checkpointPlugin } from '@berth/plugin-checkpoint';
import { FAKE_CHECKPOINT_FILE, FakeRuntime } from '@berth/testing';
import { LABEL, TYPE_CONTAINER } from '../src/index.js';
import { disposeCri, startCri, type CriHarness } from './harness.js';

afterEach(disposeCri);

/** A CRI harness whose engine has the checkpoint store (or not) on a FakeRuntime that can checkpoint (or not). */
async function setup(o: { checkpoint?: boolean; store?: boolean; experimental?: boolean } = {}): Promise<CriHarness> {
  const runtime = new FakeRuntime({ features: { checkpoint: o.checkpoint ?? true } });
  return startCri({}, undefined, { runtime, experimental: o.experimental ?? true, plugins: o.store === false ? [] : [checkpointPlugin()] });
}

/** A running container (with a CRI log file) of a new pod, labelled as CreateContainer does. */
async function runningContainer(h: CriHarness): Promise<string> {
  const pod = (await h.rt('RunPodSandbox', { config: { metadata: { name: 'p', uid: 'u1', namespace: 'default' } } })).pod_sandbox_id as string;
  const logPath = join(h.dir, 'app.log'); // its CRI log file (as kubelet's log_path names it)
  writeFileSync(logPath, '2026-12-06T11:00:00.000000000Z stdout F hello\n');
  const labels = { [LABEL.type]: TYPE_CONTAINER, [LABEL.sandboxId]: pod, [LABEL.name]: 'app', [LABEL.logPath]: logPath };
  const id = await h.t.createContainer({ name: 'cp-app', Config: { Cmd: ['/bin/sleep', '100'], Labels: labels } });
  await h.t.engine.containers.start(id);
  return id;
}

const tarList = (file: string) => execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).split('\n').filter(Boolean);

describe('CRI CheckpointContainer (FakeRuntime)', () => {
  it('writes a tar archive at location holding checkpoint/ (the runtime images), config.dump and spec.dump; the container keeps running', async () => {
    const h = await setup();
    const id = await runningContainer(h);
    const out = join(h.dir, 'checkpoints');
    mkdirSync(out);
    const location = join(out, 'checkpoint-p_default-app-2026.tar');
    expect(await h.rt('CheckpointContainer', { container_id: id, location, timeout: 30 })).toEqual({});

    expect(statSync(location).mode & 0o777).toBe(0o600); // the memory of the container's processes: owner only
    const entries = tarList(location);
    expect(entries).toContain(`checkpoint/${FAKE_CHECKPOINT_FILE}`);
    expect(entries).toContain('checkpoint/berth-checkpoint.json');
    expect(entries).toContain('config.dump');
    expect(entries).toContain('spec.dump');
    expect(entries).toContain('status.dump');
    const dump = (name: string) => JSON.parse(execFileSync('tar', ['-xOf', location, name], { encoding: 'utf8' }));
    // checkpointctl's / containerd's keys, berth's view under `berth`
    expect(dump('config.dump')).toMatchObject({ id, name: 'cp-app', runtime: expect.any(String), createdTime: expect.any(String), checkpointedTime: expect.any(String), restored: false, berth: { metadata: { name: 'app' } } });
    expect(dump('status.dump')).toMatchObject({ id, state: 1, metadata: { name: 'app' } });
    expect(dump('spec.dump')).toHaveProperty('process');
    expect(execFileSync('tar', ['-xOf', location, 'container.log'], { encoding: 'utf8' })).toContain('stdout F hello');

    expect(h.t.engine.containers.get(id).State.Running).toBe(true);
    expect((await h.rt('ContainerStatus', { container_id: id })).status.state).toBe(1); // CONTAINER_RUNNING
    // only the archive: no temporaries beside it, no engine checkpoint left in the container's own directory
    expect(readdirSync(out)).toEqual(['checkpoint-p_default-app-2026.tar']);
    expect(await h.t.engine.checkpoints.list(id)).toEqual([]);

    // a second checkpoint to the same location replaces the archive whole
    await h.rt('CheckpointContainer', { container_id: id, location });
    expect(tarList(location)).toContain('config.dump');
    expect(readdirSync(out)).toEqual(['checkpoint-p_default-app-2026.tar']);
  });

  it('refusals and their codes: unknown container, bad location, not running, runtime without checkpoint, no checkpoint store', async () => {
    let h = await setup();
    const id = await runningContainer(h);
    const location = join(h.dir, 'c.tar');
    await expect(h.rt('CheckpointContainer', { container_id: 'nope', location })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    await expect(h.rt('CheckpointContainer', { container_id: id, location: '' })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(h.rt('CheckpointContainer', { container_id: id, location: 'relative.tar' })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(h.rt('CheckpointContainer', { container_id: id, location: join(h.dir, 'no-such-dir', 'c.tar') })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(h.rt('CheckpointContainer', { container_id: id, location: h.dir })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await h.t.engine.containers.stop(id, { timeout: 0 });
    await expect(h.rt('CheckpointContainer', { container_id: id, location })).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
    expect(existsSync(location)).toBe(false);
    await disposeCri();

    h = await setup({ checkpoint: false });
    await expect(h.rt('CheckpointContainer', { container_id: await runningContainer(h), location: join(h.dir, 'c.tar') })).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: expect.stringContaining('checkpoint is not supported by runtime'),
    });
    await disposeCri();

    h = await setup({ experimental: false });
    await expect(h.rt('CheckpointContainer', { container_id: await runningContainer(h), location: join(h.dir, 'c.tar') })).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: expect.stringContaining('experimental'),
    });
    await disposeCri();

    h = await setup({ store: false });
    await expect(h.rt('CheckpointContainer', { container_id: await runningContainer(h), location: join(h.dir, 'c.tar') })).rejects.toMatchObject({ code: grpc.status.UNIMPLEMENTED });
  });

  it('a failed dump or a timeout leaves nothing in the target directory (an archive already there stays as it was); the container keeps running', async () => {
    const h = await setup();
    const id = await runningContainer(h);
    const out = join(h.dir, 'out');
    mkdirSync(out);
    const location = join(out, 'c.tar');
    writeFileSync(location, 'previous archive');

    (h.t.runtime as FakeRuntime).fail('checkpoint', 'criu dump failed', { times: 1 });
    await expect(h.rt('CheckpointContainer', { container_id: id, location })).rejects.toMatchObject({ code: grpc.status.UNKNOWN, details: expect.stringContaining('criu dump failed') });
    expect(readdirSync(out)).toEqual(['c.tar']);
    expect(execFileSync('cat', [location], { encoding: 'utf8' })).toBe('previous archive');

    // a dump far slower than the timeout (3 s against 1 s): DEADLINE_EXCEEDED at once; its files go once the dump ended
    (h.t.runtime as FakeRuntime).delay('checkpoint', 3000);
    await expect(h.rt('CheckpointContainer', { container_id: id, location, timeout: 1 })).rejects.toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
    for (let i = 0; i < 500 && readdirSync(out).length > 1; i++) await new Promise((r) => setTimeout(r, 20));
    expect(readdirSync(out)).toEqual(['c.tar']);
    expect(execFileSync('cat', [location], { encoding: 'utf8' })).toBe('previous archive');
    expect(h.t.engine.containers.get(id).State.Running).toBe(true);
  });
});
