/**
 * Exec details and legacy links with real clients against a real berthd (runc + conmon):
 * a TTY exec read by a client that reads stdcopy frames gets all of its output, `docker exec`
 * exits with the command's code (127 and the runtime's words for a missing command), a
 * client that closes its side after its input still gets the output (also without Upgrade), a
 * detached exec start answers an empty 200, and `--link` gives the linking container
 * dockerd's variables, shows in inspect as "/db:/web/data" and `docker rm --link` removes
 * only the link.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, startBerthd, removeTestImageTarball, type Berthd } from './helpers/berthd.js';

const skip = berthdSkipReason();

/**
 * POST on the daemon's socket (with Upgrade: tcp unless told not to), then write `input` and
 * close our side if given; the answer's head and everything after it.
 */
function hijackedStart(socketPath: string, urlPath: string, body: unknown, o: { upgrade?: boolean; input?: string } = {}): Promise<{ head: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const sock = net.connect(socketPath);
    const parts: Buffer[] = [];
    const upgrade = o.upgrade === false ? '' : 'Connection: Upgrade\r\nUpgrade: tcp\r\n';
    sock.on('connect', () => {
      sock.write(`POST ${urlPath} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: ${payload.length}\r\n${upgrade}\r\n${payload}`);
      const input = o.input;
      if (input !== undefined) setTimeout(() => sock.end(input), 300);
    });
    sock.on('data', (b: Buffer) => parts.push(b));
    sock.on('close', () => {
      const all = Buffer.concat(parts);
      const sep = all.indexOf('\r\n\r\n');
      resolve({ head: all.subarray(0, sep).toString(), body: all.subarray(sep + 4) });
    });
    sock.on('error', reject);
  });
}

/** The payloads of a stdcopy stream, read as docker-py does (a short last frame gives what is there). */
function readFrames(buf: Buffer): string {
  let out = '';
  for (let off = 0; off + 8 <= buf.length; ) {
    const n = buf.readUInt32BE(off + 4);
    out += buf.subarray(off + 8, off + 8 + n).toString();
    off += 8 + n;
  }
  return out;
}

describe.skipIf(skip)(`exec details and legacy links against berthd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  beforeAll(async () => {
    d = await startBerthd();
    await d.loadTestImage();
    const r = await d.docker(['run', '-d', '--name', 'box', '--network', 'none', TEST_IMAGE, 'sleep', '300']);
    expect(r.code, r.stderr).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await d?.docker(['rm', '-f', 'box', 'db', 'web', 'web2', 'web3']).catch(() => {});
    await d?.cleanup();
    removeTestImageTarball();
  }, 60_000);

  it('a TTY exec started without Tty is framed, so a client that reads frames gets all of "hello out" (it got "t")', async () => {
    const c = await d.api('POST', '/containers/box/exec', { Cmd: ['echo', 'hello out'], Tty: true, AttachStdout: true, AttachStderr: true });
    const id = JSON.parse(c.body).Id as string;
    // what docker-py's exec_start(tty=False) reads: 8-byte stdcopy headers, then that many bytes
    const raw = await hijackedStart(d.socket, `/v1.45/exec/${id}/start`, { Detach: false });
    expect(raw.head).toContain('Content-Type: application/vnd.docker.multiplexed-stream');
    expect(readFrames(raw.body)).toBe('hello out\r\n');
    // and the docker CLI (which sends Tty) gets it raw
    const cli = await d.docker(['exec', '-t', 'box', 'echo', 'hello out']);
    expect(cli.stdout).toBe('hello out\r\n');
  });

  it('docker exec exits with the command\'s code; a missing command: 127 and the runtime\'s words', async () => {
    const r = await d.docker(['exec', 'box', 'sh', '-c', 'echo x; exit 7']);
    expect(r.code).toBe(7);
    const missing = await d.docker(['exec', 'box', 'nosuch']);
    expect(missing.code).toBe(127);
    expect(missing.stdout).toMatch(/^OCI runtime exec failed: .*exec: "nosuch": executable file not found in \$PATH\r\n$/);
  });

  it('a client that closes its side after its input still gets the output and the exit code, with or without Upgrade', async () => {
    for (const upgrade of [true, false]) {
      const c = await d.api('POST', '/containers/box/exec', { Cmd: ['sh', '-c', 'cat; echo done; exit 6'], AttachStdin: true, AttachStdout: true, AttachStderr: true });
      const id = JSON.parse(c.body).Id as string;
      const raw = await hijackedStart(d.socket, `/v1.45/exec/${id}/start`, { Detach: false }, { upgrade, input: 'abc\n' });
      expect(readFrames(raw.body), upgrade ? 'with Upgrade' : 'without Upgrade').toBe('abc\ndone\n');
      expect(JSON.parse((await d.api('GET', `/exec/${id}/json`)).body)).toMatchObject({ Running: false, ExitCode: 6 });
    }
  });

  it('a detached exec start answers 200 with an empty body; the exit code comes to inspect', async () => {
    const c = await d.api('POST', '/containers/box/exec', { Cmd: ['sh', '-c', 'exit 4'] });
    const id = JSON.parse(c.body).Id as string;
    const s = await d.api('POST', `/exec/${id}/start`, { Detach: true });
    expect(s).toEqual({ status: 200, body: '' });
    let info = JSON.parse((await d.api('GET', `/exec/${id}/json`)).body);
    for (let i = 0; i < 100 && info.Running; i++) {
      await new Promise((r) => setTimeout(r, 50));
      info = JSON.parse((await d.api('GET', `/exec/${id}/json`)).body);
    }
    expect(info).toMatchObject({ Running: false, ExitCode: 4 });
  });

  it('--link: dockerd\'s variables in the linking container, inspect\'s form, rm --link removes only the link', async () => {
    expect((await d.docker(['run', '-d', '--name', 'db', '-e', 'POSTGRES_USER=admin', '--expose', '5432', TEST_IMAGE, 'sleep', '300'])).code).toBe(0);
    const web = await d.docker(['run', '--name', 'web', '--link', 'db:data', TEST_IMAGE, 'sh', '-c', 'env | grep ^DATA_ | sort']);
    expect(web.code, web.stderr).toBe(0);
    const vars = web.stdout.trim().split('\n');
    expect(vars).toContain('DATA_NAME=/web/data');
    expect(vars).toContain('DATA_ENV_POSTGRES_USER=admin');
    expect(vars).toContain('DATA_PORT_5432_TCP_PORT=5432');
    expect(vars).toContain('DATA_PORT_5432_TCP_PROTO=tcp');
    expect((await d.docker(['inspect', '-f', '{{json .HostConfig.Links}}', 'web'])).stdout.trim()).toBe('["/db:/web/data"]');

    const rm = await d.docker(['rm', '--link', 'web/data']);
    expect(rm.code, rm.stderr).toBe(0);
    expect((await d.docker(['inspect', '-f', '{{json .HostConfig.Links}}', 'web'])).stdout.trim()).toBe('null');
    expect((await d.docker(['inspect', '-f', '{{.State.Running}}', 'db'])).stdout.trim()).toBe('true');

    const missing = await d.docker(['create', '--name', 'web3', '--link', 'nosuch:x', TEST_IMAGE, 'true']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('could not get container for nosuch: No such container: nosuch');

    expect((await d.docker(['create', '--name', 'web2', '--link', 'db', TEST_IMAGE, 'true'])).code).toBe(0);
    expect((await d.docker(['stop', '-t', '0', 'db'])).code).toBe(0);
    const start = await d.docker(['start', 'web2']);
    expect(start.code).not.toBe(0);
    expect(start.stderr).toContain('Cannot link to a non running container: /db AS /web2/db');
  }, 120_000);
});
