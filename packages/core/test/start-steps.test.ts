/**
 * The start path's loop and its one failure path, on a table of recording steps: a failure at
 * each position releases every step that began — the failed one and all before it — exactly
 * once, newest first, and ends in a StartStepError naming the step; failStart then leaves the
 * exit code dockerd leaves (128 unless already non-zero; 127/126 replace it), saves, wakes the
 * waiters and honours AutoRemove.
 */
import { describe, expect, it } from 'vitest';
import { newContainerRecord, EXIT_CMD_NOT_FOUND, EXIT_START_FAILED, InvalidParameterError, MemoryLogger, StartStepError, ZERO_TIME, errorKind, type ContainerRecord, type ContainerServiceDeps } from '../src/index.js';
import { ContainerKernel } from '../src/kernel.js';
import { failStart, runStartSteps, type StartRun, type StartStep } from '../src/start-steps.js';
import type { StartStepName } from '../src/start-error.js';

const NAMES: StartStepName[] = ['mount', 'networking', 'spec', 'runtimeCreate', 'beforeStart', 'start', 'save'];

function kernel(saved: ContainerRecord[] = []) {
  const logger = new MemoryLogger();
  const d = {
    logger,
    hooks: { onStateChange: { promise: async () => {} } },
    store: { save: async (r: ContainerRecord) => void saved.push(structuredClone(r)) },
    clock: { nowNano: () => 0n },
  } as unknown as ContainerServiceDeps;
  const k = new ContainerKernel(d, () => {
    throw new Error('no backend in this test');
  });
  return { k, logger };
}

function record(fields: Partial<ContainerRecord> = {}): ContainerRecord {
  return newContainerRecord({ ID: 'c'.repeat(64), Name: '/c', Created: ZERO_TIME, Config: { Cmd: ['x'] }, HostConfig: {}, ...fields });
}

function table(journal: string[], failAt?: StartStepName, error: unknown = new Error(`boom at ${failAt}`)): StartStep[] {
  return NAMES.map((name) => ({
    name,
    run: async () => {
      journal.push(`run:${name}`);
      if (name === failAt) throw error;
    },
    release: async () => void journal.push(`release:${name}`),
  }));
}

describe('runStartSteps', () => {
  it('runs every step in order and releases nothing when all succeed', async () => {
    const journal: string[] = [];
    await runStartSteps(table(journal), { rec: record(), ctx: {} as StartRun['ctx'], policy: false }, kernel().k);
    expect(journal).toEqual(NAMES.map((n) => `run:${n}`));
  });

  NAMES.forEach((failAt, i) => {
    it(`a failure at ${failAt}: the steps up to it are released once each, newest first; a StartStepError names it (exit 128)`, async () => {
      const journal: string[] = [];
      const err = await runStartSteps(table(journal, failAt), { rec: record(), ctx: {} as StartRun['ctx'], policy: false }, kernel().k).catch((e: unknown) => e);
      const begun = NAMES.slice(0, i + 1);
      expect(journal).toEqual([...begun.map((n) => `run:${n}`), ...[...begun].reverse().map((n) => `release:${n}`)]);
      expect(err).toBeInstanceOf(StartStepError);
      expect(err).toMatchObject({ step: failAt, exitCode: EXIT_START_FAILED, message: `boom at ${failAt}` });
    });
  });

  it("keeps a step's own StartStepError (a translated runtime error) and its cause's kind", async () => {
    const own = new StartStepError('runtimeCreate', EXIT_CMD_NOT_FOUND, new InvalidParameterError('failed to create task for container: not found'));
    const err = await runStartSteps(table([], 'runtimeCreate', own), { rec: record(), ctx: {} as StartRun['ctx'], policy: false }, kernel().k).catch((e: unknown) => e);
    expect(err).toBe(own);
    expect(errorKind(err)).toBe('InvalidParameter');
  });

  it('a release that fails is logged and the releases after it still run', async () => {
    const journal: string[] = [];
    const steps = table(journal, 'spec');
    steps[1] = { ...steps[1]!, release: async () => Promise.reject(new Error('release broke')) };
    const { k, logger } = kernel();
    await expect(runStartSteps(steps, { rec: record(), ctx: {} as StartRun['ctx'], policy: false }, k)).rejects.toThrow('boom at spec');
    expect(journal.filter((j) => j.startsWith('release:'))).toEqual(['release:spec', 'release:mount']);
    expect(logger.entries.find((e) => e.msg === 'releasing a start step failed')?.fields).toMatchObject({ step: 'networking', error: 'release broke' });
  });
});

describe('failStart (moby containerStart deferred function)', () => {
  async function fail(rec: ContainerRecord, err: StartStepError) {
    const saved: ContainerRecord[] = [];
    const { k } = kernel(saved);
    k.index.add(rec);
    const waited = k.waits.add(rec.ID, 'not-running');
    const removed: string[] = [];
    await failStart(k, rec, err, { forgetBackoff: () => {}, remove: async (r) => void removed.push(r.ID) });
    return { saved, removed, waited: await waited };
  }

  it('sets 128 and the error, Pid 0, saves, wakes not-running waiters; the status stays created', async () => {
    const rec = record();
    const { saved, removed, waited } = await fail(rec, new StartStepError('spec', EXIT_START_FAILED, new Error('bad spec')));
    expect(rec.State).toMatchObject({ Status: 'created', ExitCode: 128, Error: 'bad spec', Pid: 0 });
    expect(saved.at(-1)?.State).toMatchObject({ ExitCode: 128, Error: 'bad spec' });
    expect(waited).toEqual({ StatusCode: 128, Error: { Message: 'bad spec' } });
    expect(removed).toEqual([]);
  });

  it('keeps a non-zero exit code of an earlier run for 128, but 127/126 replace it', async () => {
    const rec = record();
    rec.State.ExitCode = 7;
    await fail(rec, new StartStepError('mount', EXIT_START_FAILED, new Error('x')));
    expect(rec.State.ExitCode).toBe(7);
    await fail(rec, new StartStepError('runtimeCreate', EXIT_CMD_NOT_FOUND, new Error('not found')));
    expect(rec.State.ExitCode).toBe(127);
  });

  it('AutoRemove: the container is removed after the state was saved', async () => {
    const rec = record({ HostConfig: { AutoRemove: true } });
    const { saved, removed } = await fail(rec, new StartStepError('networking', EXIT_START_FAILED, new Error('no network')));
    expect(saved).toHaveLength(1);
    expect(removed).toEqual([rec.ID]);
  });

  it('a policy restart that failed leaves the container exited, its backoff forgotten', async () => {
    const rec = record();
    rec.State = { ...rec.State, Status: 'restarting', Running: true, Restarting: true, ExitCode: 3 };
    const { k } = kernel();
    k.index.add(rec);
    const forgotten: string[] = [];
    await failStart(k, rec, new StartStepError('start', EXIT_START_FAILED, new Error('x')), { forgetBackoff: (id) => void forgotten.push(id), remove: async () => {} });
    expect(rec.State).toMatchObject({ Status: 'exited', Running: false, Restarting: false, ExitCode: 3 });
    expect(forgotten).toEqual([rec.ID]);
  });
});
