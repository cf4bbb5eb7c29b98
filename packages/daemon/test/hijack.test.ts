/** Hijacked connections: exec start over Upgrade: tcp, stdcopy framing, stdin, detach keys, body not leaking into stdin. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp, openInjector, apiRoutes, type ExecPort, type ExecInspect, type Injector } from '../src/index.js';
import { execInspect, fakePort, record } from './helpers/fake-port.js';
import { demux, readAll } from './helpers/streams.js';

const CID = 'c'.repeat(64);

describe('hijacked exec start', () => {
  let inj: Injector;
  let execs: Map<string, ExecInspect>;
  beforeEach(async () => {
    execs = new Map();
    const port = fakePort([record(CID, 'box', 'running')]);
    const exec: ExecPort = {
      async create(container, req) {
        const id = 'e'.repeat(63) + String(execs.size);
        execs.set(id, execInspect(id, container, req));
        return { id };
      },
      // An "echo" process: stdin lines go to stdout upper-cased, and "err" to stderr; exits at stdin end.
      async start(id, _o, io, signal) {
        const e = execs.get(id)!;
        e.Running = true;
        io.stderr?.write('ready\n');
        await new Promise<void>((resolve) => {
          signal.addEventListener('abort', () => resolve());
          if (!io.stdin) return resolve();
          io.stdin.on('data', (d: Buffer) => io.stdout?.write(d.toString().toUpperCase()));
          io.stdin.on('end', () => resolve());
        });
        e.Running = false;
        e.ExitCode = 0;
      },
      async resize() {},
      async inspect(id) {
        const e = execs.get(id);
        if (!e) throw Object.assign(new Error(`No such exec instance: ${id}`), { kind: 'NotFound' });
        return e;
      },
    };
    inj = await openInjector(buildApp({ routes: apiRoutes({ ...port, exec }) }));
  });
  afterEach(async () => {
    await inj.close();
  });

  it('multiplexes stdout/stderr, forwards stdin, and keeps the start body out of stdin', async () => {
    const created = await inj.request({ method: 'POST', url: '/v1.44/containers/box/exec', body: { Cmd: ['cat'], AttachStdin: true, AttachStdout: true, AttachStderr: true } });
    expect(created.statusCode).toBe(201);
    const id = created.json().Id;
    const up = await inj.upgrade({ method: 'POST', url: `/v1.44/exec/${id}/start`, body: { Detach: false, Tty: false } });
    expect(up.statusCode).toBe(101);
    expect(up.headers['content-type']).toBe('application/vnd.docker.multiplexed-stream');
    const all = readAll(up.socket, up.head);
    up.socket.write('hello\n');
    up.socket.end();
    const out = demux(await all);
    expect(out.stderr).toBe('ready\n');
    expect(out.stdout).toBe('HELLO\n');
    expect((await inj.request({ url: `/exec/${id}/json` })).json().ExitCode).toBe(0);
  });

  it('ends the session on the detach keys without passing them on', async () => {
    const created = await inj.request({ method: 'POST', url: '/containers/box/exec', body: { Cmd: ['cat'], AttachStdin: true, AttachStdout: true, Tty: true, DetachKeys: 'ctrl-x' } });
    const id = created.json().Id;
    const up = await inj.upgrade({ method: 'POST', url: `/exec/${id}/start`, body: { Tty: true } });
    expect(up.headers['content-type']).toBe('application/vnd.docker.raw-stream');
    const all = readAll(up.socket, up.head);
    up.socket.write('ab\x18cd');
    const raw = (await all).toString();
    expect(raw).toBe('AB');
  });

  it('refuses to start an exec twice', async () => {
    const created = await inj.request({ method: 'POST', url: '/containers/box/exec', body: { Cmd: ['true'], AttachStdout: true } });
    const id = created.json().Id;
    const r1 = await inj.request({ method: 'POST', url: `/exec/${id}/start`, body: { Detach: true } });
    expect(r1.statusCode).toBe(200);
    execs.get(id)!.Running = true;
    const r2 = await inj.request({ method: 'POST', url: `/exec/${id}/start`, body: { Detach: true } });
    expect(r2.statusCode).toBe(409);
  });
});
