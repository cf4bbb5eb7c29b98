/**
 * The attach `logs=1` replay follows the client's pace: while the client reads nothing, the
 * engine stops reading the container's log once the socket and the stream's buffer are full
 * (it waits for 'drain'), instead of loading the whole log into memory; when the client reads
 * again, every line arrives.
 */
import { describe, expect, it } from 'vitest';
import { FakeRuntime } from '@berth/testing';
import type { ContainerLogOptions, LogMessage } from '@berth/core';
import { engineApp } from './helpers/engine-app.js';
import { demux, readAll } from './helpers/streams.js';

// ~8 MB of log: far more than a unix socket and a stream buffer hold.
const LINES = Array.from({ length: 40_000 }, (_, i) => `line ${i} ${'x'.repeat(200)}`);

describe('attach logs=1 replay and backpressure', () => {
  const app = engineApp();

  it('a client that does not read holds the replay back; once it reads, it gets every line', async () => {
    const { t, inj } = await app.open({ runtime: new FakeRuntime({ logCompleteAtExit: true, script: { runFor: 20, output: LINES } }) });
    const c = await inj.request({ method: 'POST', url: '/v1.44/containers/create', body: { Image: 'none', Cmd: ['/bin/out'], Labels: { 'io.berth.rootfs': t.rootfs } } });
    expect(c.statusCode, c.text).toBe(201);
    const id = c.json().Id as string;
    expect((await inj.request({ method: 'POST', url: `/v1.44/containers/${id}/start` })).statusCode).toBe(204);
    expect((await inj.request({ method: 'POST', url: `/v1.44/containers/${id}/wait` })).json().StatusCode).toBe(0);

    // Count the entries the engine has read from the log for this session.
    let read = 0;
    const logs = t.engine.logs;
    const original = logs.read.bind(logs);
    logs.read = async function* (idOrName: string, o: ContainerLogOptions): AsyncGenerator<LogMessage> {
      for await (const m of original(idOrName, o)) {
        read++;
        yield m;
      }
    };

    const up = await inj.upgrade({ url: `/v1.44/containers/${id}/attach?logs=1&stdout=1` });
    expect(up.statusCode).toBe(101);
    up.socket.pause();
    // Wait until the reader has stopped (no new entry for a while), bounded.
    let last = -1;
    for (let i = 0; i < 200 && read !== last; i++) {
      last = read;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThan(LINES.length);

    const all = readAll(up.socket, up.head);
    up.socket.resume();
    const out = demux(await all).stdout;
    expect(out.split('\n').length - 1).toBe(LINES.length);
    expect(read).toBe(LINES.length);
  }, 60_000);
});
