/**
 * engine.attach (attach.ts) over the FakeRuntime: the output of an auto-remove container
 * (`docker run --rm`) reaches an attached client that reads slowly — the `core:attach-drain`
 * beforeRemove tap holds the removal (and so the log) until the session has written it all;
 * a streaming attach to an exited container waits for its next run (`docker start -a`, as
 * dockerd attaches to the stream pipes); a paused one is a 409.
 */
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeRuntime, createTestEngine, type TestEngine } from '../../testing/src/index.js';
import { errorKind } from '../src/index.js';

const LINES = Array.from({ length: 2000 }, (_, i) => `line ${i} ${'y'.repeat(100)}`);

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

async function drainAll(s: PassThrough): Promise<string> {
  let out = '';
  s.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((r) => s.once('end', r));
  return out;
}

describe('engine.attach', () => {
  it('an auto-remove container is removed only once its slow attached reader got every line', async () => {
    t = await createTestEngine({ runtime: new FakeRuntime({ logCompleteAtExit: true, script: { runFor: 20, output: LINES } }), attachDrainMs: 60_000 });
    const engine = t.engine;
    const id = await t.createContainer({ HostConfig: { AutoRemove: true } });
    const stdout = new PassThrough({ highWaterMark: 1024 });
    const session = engine.attach.attach(id, { stdin: false, stdout: true, stderr: false, logs: false, stream: true }, { stdout }, new AbortController().signal);
    const exited = engine.containers.wait(id, 'next-exit');
    await engine.containers.start(id);
    await exited;
    // The reader has not read: the removal waits in beforeRemove, the record and its log stay.
    await new Promise((r) => setTimeout(r, 300));
    expect(engine.containers.has(id)).toBe(true);
    expect(engine.attach.sessions(id)).toBe(1);

    const removed = engine.containers.wait(id, 'removed').catch(() => undefined);
    const read = drainAll(stdout);
    await session;
    stdout.end();
    const out = await read;
    expect(out.split('\n').length - 1).toBe(LINES.length);
    await removed;
    expect(engine.containers.has(id)).toBe(false);
  });

  it('a streaming attach to an exited container gets its next run (docker start -a); the replay alone gives the log so far; a resize of it is a 409', async () => {
    t = await createTestEngine({ runtime: new FakeRuntime({ logCompleteAtExit: true, script: { runFor: 5, output: ['hello'] } }) });
    const engine = t.engine;
    const id = await t.createContainer();
    let exited = engine.containers.wait(id, 'next-exit');
    await engine.containers.start(id);
    await exited;

    const stdout = new PassThrough();
    const read = drainAll(stdout);
    const session = engine.attach.attach(id, { stdin: false, stdout: true, stderr: false, logs: false, stream: true }, { stdout }, new AbortController().signal);
    exited = engine.containers.wait(id, 'next-exit');
    await engine.containers.start(id);
    await exited;
    await session;
    stdout.end();
    expect(await read).toBe('hello\n');

    const replay = new PassThrough();
    const replayed = drainAll(replay);
    await engine.attach.attach(id, { stdin: false, stdout: true, stderr: false, logs: true, stream: false }, { stdout: replay }, new AbortController().signal);
    replay.end();
    expect(await replayed).toBe('hello\nhello\n');
    const resized = await engine.attach.resize(id, { height: 40, width: 120 }).catch((e: unknown) => e);
    expect(errorKind(resized)).toBe('Conflict');
    expect((resized as Error).message).toBe(`Container ${id} is not running`);
  });

  it('a streaming attach to a paused container is a 409', async () => {
    t = await createTestEngine({ runtime: new FakeRuntime({ script: { runFor: 60_000 } }) });
    const engine = t.engine;
    const id = await t.createContainer();
    await engine.containers.start(id);
    await engine.containers.pause(id);
    const err = await engine.attach.attach(id, { stdin: false, stdout: true, stderr: false, logs: false, stream: true }, { stdout: new PassThrough() }, new AbortController().signal).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('Conflict');
    expect((err as Error).message).toBe('You cannot attach to a paused container, unpause it first');
  });
});
