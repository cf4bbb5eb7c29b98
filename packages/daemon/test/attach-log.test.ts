/**
 * Attach and `logs --follow` end right after the exit when the runtime backend says its log
 * is complete at the exit (RuntimeBackend.logCompleteAtExit), and deliver every line the
 * container wrote, including the last batch written in the same tick as the exit event.
 * With a backend that does not say so, they wait for the quiet period (logDrainMs).
 */
import { describe, expect, it } from 'vitest';
import { FakeRuntime, type TestEngine } from '@berth/testing';
import type { Injector } from '../src/index.js';
import { engineApp } from './helpers/engine-app.js';
import { demux, readAll } from './helpers/streams.js';

// Long lines, so that the socket's buffers fill up when the client does not read.
const LINES = Array.from({ length: 3000 }, (_, i) => `line ${i} ${'x'.repeat(200)}`);

describe('attach and logs --follow end at the end of a complete log', () => {
  const app = engineApp();
  let t: TestEngine | undefined;
  let inj: Injector | undefined;

  const setup = async (logCompleteAtExit: boolean, logDrainMs: number) => {
    const fake = new FakeRuntime({ logCompleteAtExit, script: { runFor: 20, output: LINES } });
    ({ t, inj } = await app.open({ runtime: fake, logDrainMs }));
  };
  const create = async (): Promise<string> => {
    const r = await inj!.request({
      method: 'POST',
      url: '/v1.44/containers/create',
      body: { Image: 'none', Cmd: ['/bin/out'], AttachStdout: true, AttachStderr: true, Labels: { 'io.berth.rootfs': t!.rootfs } },
    });
    expect(r.statusCode, r.text).toBe(201);
    return r.json().Id as string;
  };
  const attachAndRun = async (id: string): Promise<string> => {
    const up = await inj!.upgrade({ url: `/v1.44/containers/${id}/attach?stream=1&stdout=1&stderr=1` });
    expect(up.statusCode).toBe(101);
    const all = readAll(up.socket, up.head);
    const s = await inj!.request({ method: 'POST', url: `/v1.44/containers/${id}/start` });
    expect(s.statusCode, s.text).toBe(204);
    return demux(await all).stdout;
  };

  it('attach: every line, and the stream ends without the quiet period (logDrainMs 10 min)', async () => {
    await setup(true, 600_000);
    for (let i = 0; i < 5; i++) {
      const out = await attachAndRun(await create());
      expect(out.split('\n').length - 1).toBe(LINES.length);
      expect(out.endsWith(`${LINES[LINES.length - 1]}\n`)).toBe(true);
    }
  });

  it('a client that reads slowly still gets every line: the stream is flushed before it ends', async () => {
    await setup(true, 600_000);
    const id = await create();
    const up = await inj!.upgrade({ url: `/v1.44/containers/${id}/attach?stream=1&stdout=1&stderr=1` });
    up.socket.pause(); // read nothing until the container has exited and the daemon is done with it
    const s = await inj!.request({ method: 'POST', url: `/v1.44/containers/${id}/start` });
    expect(s.statusCode).toBe(204);
    const w = await inj!.request({ method: 'POST', url: `/v1.44/containers/${id}/wait` });
    expect(w.json().StatusCode).toBe(0);
    await new Promise((r) => setTimeout(r, 100));
    const all = readAll(up.socket, up.head);
    up.socket.resume();
    const out = demux(await all).stdout;
    expect(out.split('\n').length - 1).toBe(LINES.length);
  });

  it('logs --follow: every line, ending right after the exit (logDrainMs 10 min)', async () => {
    await setup(true, 600_000);
    const id = await create();
    const s = await inj!.request({ method: 'POST', url: `/v1.44/containers/${id}/start` });
    expect(s.statusCode).toBe(204);
    const r = await inj!.request({ url: `/v1.44/containers/${id}/logs?follow=1&stdout=1` });
    expect(r.statusCode).toBe(200);
    const out = demux(r.body).stdout;
    expect(out.split('\n').length - 1).toBe(LINES.length);
  });

  it('a backend without a complete log at the exit: attach waits for the quiet period and still gets every line', async () => {
    await setup(false, 100);
    const out = await attachAndRun(await create());
    expect(out.split('\n').length - 1).toBe(LINES.length);
  });
});
