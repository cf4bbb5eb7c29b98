/**
 * CRI CheckpointContainer against berthd (plugin `cri`): the archive at the location kubelet
 * gives, with the fake OCI runtime CLI as a RuntimeClass handler (its checkpoints need no
 * CRIU; a failing dump leaves nothing), and with runc + CRIU where `criu check` passes. Pods go
 * on this file's own CNI bridge and subnet, put back even on failure (helpers/cri.ts).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { testNetworks } from './helpers/network-host.js';
import { CONTAINER, INVALID_ARGUMENT, NOT_FOUND, UNKNOWN, criSkip as skip, podConfig, useCriBerthd, waitFor } from './helpers/cri.js';
import { criuSkipReason } from './runtime-helpers.js';

const criuSkip = skip ?? criuSkipReason();

/** The names in a tar archive (`tar -t`; `inner`: those of the archive `inner` inside it). */
function tarNames(file: string, inner?: string): string[] {
  const r = inner ? spawnSync('sh', ['-c', 'tar -xOf "$1" "$2" | tar -t', 'sh', file, inner], { encoding: 'utf8' }) : spawnSync('tar', ['-tf', file], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
}

describe.skipIf(skip)(`CRI CheckpointContainer against berthd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const h = useCriBerthd(testNetworks('bq', ['k']).k);
  const { rt, runPod, startContainer, exec } = h;

  it('runtime should support CheckpointContainer (RuntimeClass handler = the fake OCI runtime): a tar archive at location, the container still running; a failing dump leaves nothing', async () => {
    const config = podConfig('ckpt');
    const pod = { id: (await rt('RunPodSandbox', { config, runtime_handler: 'fake' })).pod_sandbox_id as string, config };
    const id = await startContainer(pod, 'app', ['sh', '-c', 'echo kept > /ckpt-marker; exec sleep 3600']);
    // the file the process wrote is in its writable layer (docker diff through the Docker API)
    await waitFor('the marker file', async () => (await h.d.api('GET', `/containers/${id}/changes`)).body, (b) => b.includes('/ckpt-marker'));
    const out = fs.mkdtempSync(path.join(h.d.dir, 'kubelet-checkpoints-'));
    const location = path.join(out, `checkpoint-ckpt_critest-app-${new Date().toISOString()}.tar`);
    expect(await rt('CheckpointContainer', { container_id: id, location, timeout: 60 })).toEqual({});
    const names = tarNames(location);
    for (const n of ['checkpoint/fake-checkpoint.json', 'checkpoint/berth-checkpoint.json', 'config.dump', 'status.dump', 'spec.dump', 'rootfs-diff.tar', 'deleted.files']) expect(names).toContain(n);
    expect(tarNames(location, 'rootfs-diff.tar')).toContain('ckpt-marker');
    expect(fs.statSync(location).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(out)).toEqual([path.basename(location)]);
    expect((await rt('ContainerStatus', { container_id: id })).status.state).toBe(CONTAINER.RUNNING);
    expect((await h.d.docker(['inspect', '--format', '{{.State.Running}}', id])).stdout.trim()).toBe('true');

    // refusals: an unknown container, a relative location; a dump that fails (the fake runtime's injected CRIU-like failure)
    await expect(rt('CheckpointContainer', { container_id: 'no-such-container', location })).rejects.toMatchObject({ code: NOT_FOUND });
    await expect(rt('CheckpointContainer', { container_id: id, location: 'relative.tar' })).rejects.toMatchObject({ code: INVALID_ARGUMENT });
    const failing = await startContainer(pod, 'failing', ['sleep', '3601'], { envs: [{ key: 'FAKE_OCI_CHECKPOINT_FAIL', value: Buffer.from('injected dump failure') }] });
    const failed = path.join(out, 'failed.tar');
    await expect(rt('CheckpointContainer', { container_id: failing, location: failed })).rejects.toMatchObject({ code: UNKNOWN, details: expect.stringContaining('injected dump failure') });
    expect(fs.readdirSync(out)).toEqual([path.basename(location)]);
    expect((await rt('ContainerStatus', { container_id: failing })).status.state).toBe(CONTAINER.RUNNING);
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
    fs.rmSync(out, { recursive: true, force: true });
  });

  it.skipIf(criuSkip !== null)(`runtime should support CheckpointContainer with runc + CRIU${criuSkip ? ` (skipped: ${criuSkip})` : ''}`, async () => {
    const pod = await runPod('ckpt-criu');
    const id = await startContainer(pod, 'counter', ['sh', '-c', 'i=0; while true; do i=$((i+1)); sleep 0.2; done'], { linux: { security_context: { seccomp: { profile_type: 1 } } } });
    const out = fs.mkdtempSync(path.join(h.d.dir, 'kubelet-checkpoints-'));
    const location = path.join(out, 'checkpoint-ckpt-criu_critest-counter.tar');
    await rt('CheckpointContainer', { container_id: id, location, timeout: 120 });
    // what kubelet's node e2e looks for in an archive
    for (const n of ['checkpoint/inventory.img', 'config.dump', 'spec.dump']) expect(tarNames(location)).toContain(n);
    expect((await rt('ContainerStatus', { container_id: id })).status.state).toBe(CONTAINER.RUNNING);
    expect((await exec(id, ['echo', 'alive'])).stdout).toBe('alive\n');
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
    fs.rmSync(out, { recursive: true, force: true });
  });});
