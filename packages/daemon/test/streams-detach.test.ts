/**
 * Issue 10 item 1: input that arrives after the detach sequence (attach and exec start) must
 * end the session quietly. It used to push after EOF in DetachFilter, an unhandled 'error'
 * that ended the whole daemon.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AttachStreams } from '@berth/core';
import { buildApp, openInjector, apiRoutes, type ExecPort, type ExecInspect, type Injector } from '../src/index.js';
import { DetachFilter } from '../src/hijack-io.js';
import { execInspect, fakePort, record } from './helpers/fake-port.js';
import { readAll } from './helpers/streams.js';

const CID = 'c'.repeat(64);

/** Uncaught exceptions seen while `fn` runs (vitest would report them too, failing the run). */
async function uncaughtDuring(fn: () => Promise<void>): Promise<Error[]> {
  const seen: Error[] = [];
  const h = (err: Error) => seen.push(err);
  process.prependListener('uncaughtException', h);
  try {
    await fn();
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    process.off('uncaughtException', h);
  }
  return seen;
}

describe('DetachFilter', () => {
  it('drops what comes after the detach keys, in the same chunk or later, without an error', async () => {
    let detached = 0;
    const f = new DetachFilter(Buffer.from([0x10, 0x11]), () => detached++);
    const errors: Error[] = [];
    f.on('error', (e) => errors.push(e));
    const out: Buffer[] = [];
    f.on('data', (d: Buffer) => out.push(d));
    const ended = new Promise<void>((r) => f.on('end', () => r()));
    f.write(Buffer.from('ab\x10'));
    f.write(Buffer.from('\x11cd'));
    f.write(Buffer.from('more input after the detach'));
    f.end(Buffer.from('\x10\x11again'));
    await ended;
    await new Promise((r) => setImmediate(r));
    expect(errors).toEqual([]);
    expect(Buffer.concat(out).toString()).toBe('ab');
    expect(detached).toBe(1);
  });
});

describe('input after the detach keys ends only the session', () => {
  let inj: Injector;
  let execs: Map<string, ExecInspect>;
  beforeEach(async () => {
    execs = new Map();
    const port = fakePort([record(CID, 'box', 'running', { Config: { Image: 'busybox', Cmd: ['cat'], OpenStdin: true, Tty: true, Labels: {} } })]);
    // A process that echoes stdin until it ends (or the session is detached).
    const echo = async (io: AttachStreams, signal: AbortSignal) => {
      await new Promise<void>((resolve) => {
        signal.addEventListener('abort', () => resolve());
        if (!io.stdin) return resolve();
        io.stdin.on('data', (d: Buffer) => io.stdout?.write(d));
        io.stdin.on('end', () => resolve());
      });
    };
    port.containers.attach = async (_id, _req, io, signal) => echo(io, signal);
    const exec: ExecPort = {
      async create(container, req) {
        const id = 'e'.repeat(64);
        execs.set(id, execInspect(id, container, req));
        return { id };
      },
      async start(_id, _o, io, signal) {
        await echo(io, signal);
      },
      async resize() {},
      async inspect(id) {
        return execs.get(id)!;
      },
    };
    inj = await openInjector(buildApp({ routes: apiRoutes({ ...port, exec }) }));
  });
  afterEach(async () => {
    await inj.close();
  });

  const afterDetach = async (url: string, keys: string, body?: object) => {
    const up = await inj.upgrade({ method: 'POST', url, ...(body ? { body } : {}) });
    expect(up.statusCode).toBe(101);
    const all = readAll(up.socket, up.head);
    up.socket.write('ab' + keys);
    // The session ends on the keys; the client keeps typing before it notices.
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 5));
      if (!up.socket.destroyed) up.socket.write('typed after the detach\n');
    }
    up.socket.on('error', () => {});
    expect((await all).toString()).toBe('ab');
    const ping = await inj.request({ url: '/_ping' });
    expect(ping.statusCode).toBe(200);
  };

  it('attach with detachKeys', async () => {
    const errors = await uncaughtDuring(() => afterDetach(`/v1.44/containers/box/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-x`, '\x18'));
    expect(errors.map((e) => e.message)).toEqual([]);
  });

  it('exec start with DetachKeys', async () => {
    const errors = await uncaughtDuring(async () => {
      const created = await inj.request({ method: 'POST', url: '/containers/box/exec', body: { Cmd: ['cat'], AttachStdin: true, AttachStdout: true, Tty: true, DetachKeys: 'ctrl-x' } });
      await afterDetach(`/v1.44/exec/${created.json().Id}/start`, '\x18', { Tty: true });
    });
    expect(errors.map((e) => e.message)).toEqual([]);
  });
});
