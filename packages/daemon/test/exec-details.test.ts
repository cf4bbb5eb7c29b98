/**
 * Exec details real clients trip on, through the API over the engine and a FakeRuntime whose
 * exec writes "hello out\r\n": the start request's Tty decides the framing (dockerd), never
 * the process's terminal; `Detach` answers 200 with an empty body; a command that is not
 * found ends with 127 (dockerd's exit code); inspect has the exit code as soon as the
 * hijacked stream ends; legacy links through the API (create, inspect, DELETE ?link=1).
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { FakeRuntime, type TestEngine } from '@berth/testing';
import type { ExecOptions, ExecSession } from '@berth/core';
import type { Injector } from '../src/index.js';
import { engineApp } from './helpers/engine-app.js';
import { demux, readAll } from './helpers/streams.js';

/** A FakeRuntime whose exec processes print one line before they exit. */
class EchoRuntime extends FakeRuntime {
  override async exec(id: string, opts: ExecOptions): Promise<ExecSession> {
    const session = await super.exec(id, opts);
    opts.streams.stdout?.write('hello out\r\n');
    return session;
  }
}

const app = engineApp();
let t: TestEngine | undefined;
let inj: Injector | undefined;

/** An engine on this runtime and the API over it. */
async function openApi(runtime: FakeRuntime): Promise<Injector> {
  ({ t, inj } = await app.open({ runtime }));
  return inj;
}

describe('exec start details', () => {
  const setup = async (execExitCode = 0) => {
    const fake = new EchoRuntime({ script: { runFor: 60_000, execExitCode, execRunFor: 20 } });
    const api = await openApi(fake);
    const c = await api.request({ method: 'POST', url: '/v1.44/containers/create?name=box', body: { Image: 'none', Cmd: ['/bin/sleep'], Labels: { 'io.berth.rootfs': t!.rootfs } } });
    expect(c.statusCode, c.text).toBe(201);
    expect((await api.request({ method: 'POST', url: '/v1.44/containers/box/start' })).statusCode).toBe(204);
    return fake;
  };
  const execCreate = async (body: Record<string, unknown>): Promise<string> => {
    const r = await inj!.request({ method: 'POST', url: '/v1.44/containers/box/exec', body: { AttachStdout: true, AttachStderr: true, ...body } });
    expect(r.statusCode, r.text).toBe(201);
    return r.json().Id as string;
  };
  const lastExec = (fake: FakeRuntime) => fake.callsOf('exec').at(-1)!.args[0] as ExecOptions;

  it('a TTY exec started without Tty is framed (dockerd): a demuxing client reads all of "hello out"', async () => {
    await setup();
    const id = await execCreate({ Cmd: ['echo', 'hello out'], Tty: true });
    const up = await inj!.upgrade({ url: `/v1.44/exec/${id}/start`, body: { Detach: false } });
    expect(up.headers['content-type']).toBe('application/vnd.docker.multiplexed-stream');
    expect(demux(await readAll(up.socket, up.head)).stdout).toBe('hello out\r\n');
  });

  it('a TTY exec started with Tty is raw; a non-TTY exec started with Tty still runs without a terminal', async () => {
    const fake = await setup();
    const tty = await execCreate({ Cmd: ['echo', 'hello out'], Tty: true });
    const a = await inj!.upgrade({ url: `/v1.44/exec/${tty}/start`, body: { Tty: true } });
    expect(a.headers['content-type']).toBe('application/vnd.docker.raw-stream');
    expect((await readAll(a.socket, a.head)).toString()).toBe('hello out\r\n');
    expect(lastExec(fake).tty).toBe(true);

    const plain = await execCreate({ Cmd: ['echo', 'hello out'] });
    const b = await inj!.upgrade({ url: `/v1.44/exec/${plain}/start`, body: { Tty: true } });
    expect(b.headers['content-type']).toBe('application/vnd.docker.raw-stream');
    expect((await readAll(b.socket, b.head)).toString()).toBe('hello out\r\n');
    expect(lastExec(fake).tty).toBe(false);
    expect(lastExec(fake).process.terminal).toBe(false);
    expect((await inj!.request({ url: `/v1.44/exec/${plain}/json` })).json().ProcessConfig.tty).toBe(false);
  });

  it('Detach: 200 with an empty body, as dockerd; the exit code arrives in inspect', async () => {
    await setup(4);
    const id = await execCreate({ Cmd: ['sh', '-c', 'exit 4'], AttachStdout: false, AttachStderr: false });
    const r = await inj!.request({ method: 'POST', url: `/v1.44/exec/${id}/start`, body: { Detach: true } });
    expect(r.statusCode).toBe(200);
    expect(r.text).toBe('');
    for (let i = 0; i < 100 && (await inj!.request({ url: `/v1.44/exec/${id}/json` })).json().Running; i++) await new Promise((res) => setTimeout(res, 10));
    expect((await inj!.request({ url: `/v1.44/exec/${id}/json` })).json()).toMatchObject({ Running: false, ExitCode: 4 });
  });

  it('the exit code is in inspect as soon as the hijacked stream ends', async () => {
    await setup(3);
    for (let i = 0; i < 5; i++) {
      const id = await execCreate({ Cmd: ['sh', '-c', 'exit 3'] });
      const up = await inj!.upgrade({ url: `/v1.44/exec/${id}/start`, body: {} });
      await readAll(up.socket, up.head);
      expect((await inj!.request({ url: `/v1.44/exec/${id}/json` })).json()).toMatchObject({ Running: false, ExitCode: 3, Pid: 0 });
    }
  });

  it('a command that is not found: exit code 127 in inspect (dockerd), the error in the stream', async () => {
    const fake = await setup();
    fake.fail('exec', 'OCI runtime exec failed: exec: "nosuch": executable file not found in $PATH');
    const id = await execCreate({ Cmd: ['nosuch'] });
    const up = await inj!.upgrade({ url: `/v1.44/exec/${id}/start`, body: {} });
    const out = demux(await readAll(up.socket, up.head));
    expect(out.stdout).toContain('executable file not found in $PATH');
    expect(out.stdout.endsWith('\r\n')).toBe(true);
    expect((await inj!.request({ url: `/v1.44/exec/${id}/json` })).json()).toMatchObject({ Running: false, ExitCode: 127 });
  });
});

/** A FakeRuntime whose exec processes read stdin to its end, then print it and exit with 5. */
class CatRuntime extends FakeRuntime {
  override async exec(id: string, opts: ExecOptions): Promise<ExecSession> {
    let input = '';
    const exited = new Promise<number>((resolve) => {
      opts.streams.stdin?.on('data', (d: Buffer) => (input += d.toString()));
      opts.streams.stdin?.on('end', () =>
        setTimeout(() => {
          opts.streams.stdout?.write(`got ${input}`);
          this.emitExit({ id, execId: opts.execId, exitCode: 5, oomKilled: false, exitedAt: new Date().toISOString() });
          resolve(5);
        }, 50),
      );
    });
    return { pid: 4242, exited };
  }
}

/** exec start on a raw connection, with or without Upgrade: write `input`, close our side, read all. */
function startAndHalfClose(socketPath: string, id: string, upgrade: boolean, input: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    const parts: Buffer[] = [];
    sock.on('connect', () => {
      sock.write(
        `POST /v1.44/exec/${id}/start HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: 2\r\n${upgrade ? 'Connection: Upgrade\r\nUpgrade: tcp\r\n' : ''}\r\n{}`,
      );
      setTimeout(() => sock.end(input), 100);
    });
    sock.on('data', (b: Buffer) => parts.push(b));
    sock.on('close', () => {
      const all = Buffer.concat(parts);
      resolve(all.subarray(all.indexOf('\r\n\r\n') + 4));
    });
    sock.on('error', reject);
  });
}

describe('a client that closes its side after its input', () => {
  it('still gets the output that follows and the exit code, with or without Upgrade (dockerd keeps sending)', async () => {
    const api = await openApi(new CatRuntime({ script: { runFor: 60_000 } }));
    expect((await api.request({ method: 'POST', url: '/v1.44/containers/create?name=box', body: { Image: 'none', Cmd: ['/bin/sleep'], Labels: { 'io.berth.rootfs': t!.rootfs } } })).statusCode).toBe(201);
    expect((await api.request({ method: 'POST', url: '/v1.44/containers/box/start' })).statusCode).toBe(204);
    for (const upgrade of [true, false]) {
      const created = await api.request({ method: 'POST', url: '/v1.44/containers/box/exec', body: { Cmd: ['cat'], AttachStdin: true, AttachStdout: true } });
      const id = created.json().Id as string;
      const body = await startAndHalfClose(api.socketPath, id, upgrade, 'abc');
      expect(demux(body).stdout, upgrade ? 'with Upgrade' : 'without Upgrade').toBe('got abc');
      expect((await api.request({ url: `/v1.44/exec/${id}/json` })).json()).toMatchObject({ Running: false, ExitCode: 5 });
    }
  });
});

describe('legacy links through the API', () => {
  it('create refuses a missing container with 400; inspect shows "/db:/web/data"; DELETE ?link=1 removes only the link', async () => {
    const api = await openApi(new FakeRuntime({ script: { runFor: 60_000 } }));
    const create = (name: string, hc: Record<string, unknown> = {}) =>
      api.request({ method: 'POST', url: `/v1.44/containers/create?name=${name}`, body: { Image: 'none', Cmd: ['/bin/sleep'], Labels: { 'io.berth.rootfs': t!.rootfs }, HostConfig: hc } });
    expect((await create('db')).statusCode).toBe(201);
    const missing = await create('web', { Links: ['nosuch:data'] });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().message).toBe('could not get container for nosuch: No such container: nosuch');
    expect((await create('web', { Links: ['db:data', 'db'] })).statusCode).toBe(201);
    expect((await api.request({ url: '/v1.44/containers/web/json' })).json().HostConfig.Links).toEqual(['/db:/web/data', '/db:/web/db']);

    const rm = await api.request({ method: 'DELETE', url: '/v1.44/containers/web/data?link=1' });
    expect(rm.statusCode, rm.text).toBe(204);
    expect((await api.request({ url: '/v1.44/containers/web/json' })).json().HostConfig.Links).toEqual(['/db:/web/db']);
    expect((await api.request({ url: '/v1.44/containers/db/json' })).statusCode).toBe(200);
    const again = await api.request({ method: 'DELETE', url: '/v1.44/containers/web/data?link=1' });
    expect(again.statusCode).toBe(404);
    expect(again.json().message).toBe('No such container: web/data');
    const plain = await api.request({ method: 'DELETE', url: '/v1.44/containers/db?link=1' });
    expect(plain.statusCode).toBe(409);
    expect(plain.json().message).toBe('Conflict, cannot remove the default link name of the container');
    // a path with a slash is never a container removal without ?link=1
    expect((await api.request({ method: 'DELETE', url: '/v1.44/containers/web/db' })).statusCode).toBe(404);
    expect((await api.request({ url: '/v1.44/containers/web/json' })).statusCode).toBe(200);
  });
});
