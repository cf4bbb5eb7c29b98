/**
 * berthd as operators run it: the data-root lock, pidfile and socket mode, SIGTERM with and
 * without --live-restore, tcp:// only with mutual TLS, flag and daemon.json errors.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BERTHD_BIN, TEST_IMAGE, berthdSkipReason, startBerthd, removeTestImageTarball, type Berthd } from './helpers/berthd.js';

const skip = berthdSkipReason();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(skip)(`berthd lifecycle${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const daemons: Berthd[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.cleanup();
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
    removeTestImageTarball();
  }, 60_000);

  it('locks its data root, writes the pidfile, serves a 0660 socket, cleans up on SIGTERM', async () => {
    const d = await startBerthd();
    daemons.push(d);
    expect(fs.readFileSync(d.pidfile, 'utf8').trim()).toBe(String(d.process.pid));
    expect(fs.statSync(d.socket).mode & 0o777).toBe(0o660);
    const second = await startBerthd({ dir: d.dir, expectFailure: true, args: ['-H', `unix://${path.join(d.dir, 'second.sock')}`] });
    expect(await second.stop()).toBe(1);
    expect(second.log()).toContain('is in use by another berthd');
    expect((await d.api('GET', '/_ping')).status).toBe(200);
    expect(await d.stop('SIGTERM')).toBe(0);
    expect(fs.existsSync(d.pidfile)).toBe(false);
    expect(fs.existsSync(d.socket)).toBe(false);
  });

  it('SIGTERM stops the containers; with --live-restore they keep running and are found again', async () => {
    const dir = fs.mkdtempSync('/tmp/bd-');
    dirs.push(dir);
    let d = await startBerthd({ dir, args: ['--shutdown-timeout', '1'] });
    daemons.push(d);
    await d.loadTestImage();
    const run = await d.docker(['run', '-d', '--name', 'keeper', '--network', 'none', TEST_IMAGE, 'sleep', '300']);
    expect(run.code).toBe(0);
    const pid = Number((await d.docker(['inspect', '-f', '{{.State.Pid}}', 'keeper'])).stdout.trim());
    expect(pidAlive(pid)).toBe(true);
    expect(await d.stop('SIGTERM')).toBe(0);
    expect(pidAlive(pid)).toBe(false);

    d = await startBerthd({ dir, args: ['--live-restore'] });
    daemons.push(d);
    expect((await d.docker(['inspect', '-f', '{{.State.Status}}', 'keeper'])).stdout.trim()).toBe('exited');
    expect((await d.docker(['start', 'keeper'])).code).toBe(0);
    const pid2 = Number((await d.docker(['inspect', '-f', '{{.State.Pid}}', 'keeper'])).stdout.trim());
    expect(await d.stop('SIGINT')).toBe(0);
    expect(pidAlive(pid2)).toBe(true);

    d = await startBerthd({ dir, args: ['--live-restore'] });
    daemons.push(d);
    const again = await d.docker(['inspect', '-f', '{{.State.Status}} {{.State.Pid}}', 'keeper']);
    expect(again.stdout.trim()).toBe(`running ${pid2}`);
    expect((await d.docker(['rm', '-f', 'keeper'])).code).toBe(0);
    expect(pidAlive(pid2)).toBe(false);
  });

  it('refuses tcp:// without --tlsverify, and serves it with mutual TLS only', async () => {
    const plain = await startBerthd({ args: ['-H', 'tcp://127.0.0.1:23999'], expectFailure: true });
    daemons.push(plain);
    expect(await plain.stop()).toBe(1);
    expect(plain.log()).toContain('without mutual TLS');

    const certs = fs.mkdtempSync('/tmp/bd-tls-');
    dirs.push(certs);
    const ssl = (...a: string[]) => execFileSync('openssl', a, { cwd: certs, stdio: 'pipe' });
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=berth-test-ca');
    for (const who of ['server', 'client']) {
      ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who === 'server' ? '127.0.0.1' : 'client'}`);
      fs.writeFileSync(path.join(certs, `${who}.ext`), who === 'server' ? 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' : 'extendedKeyUsage=clientAuth\n');
      ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.pem`, '-days', '1', '-extfile', `${who}.ext`);
    }
    const port = 23000 + Math.floor(Math.random() * 2000);
    const d = await startBerthd({ args: ['-H', `tcp://127.0.0.1:${port}`, '--tlsverify', '--tlscacert', path.join(certs, 'ca.pem'), '--tlscert', path.join(certs, 'server.pem'), '--tlskey', path.join(certs, 'server.key')] });
    daemons.push(d);
    const get = (withClientCert: boolean) =>
      new Promise<number>((resolve, reject) => {
        const req = https.request(
          {
            host: '127.0.0.1',
            port,
            path: '/_ping',
            ca: fs.readFileSync(path.join(certs, 'ca.pem')),
            ...(withClientCert ? { cert: fs.readFileSync(path.join(certs, 'client.pem')), key: fs.readFileSync(path.join(certs, 'client.key')) } : {}),
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
    expect(await get(true)).toBe(200);
    await expect(get(false)).rejects.toThrow();
    const cli = await d.docker(['--tlsverify', '--tlscacert', path.join(certs, 'ca.pem'), '--tlscert', path.join(certs, 'client.pem'), '--tlskey', path.join(certs, 'client.key'), '-H', `tcp://127.0.0.1:${port}`, 'version', '--format', '{{.Server.APIVersion}}'], { env: { DOCKER_HOST: '' } });
    expect(cli.stdout.trim()).toBe('1.56');
  });

  it('exits 125 on a bad flag and on a directive given as flag and in daemon.json', () => {
    const bad = spawnSync(process.execPath, [BERTHD_BIN, '--no-such-flag'], { encoding: 'utf8' });
    expect(bad.status).toBe(125);
    const dir = fs.mkdtempSync('/tmp/bd-');
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'daemon.json'), JSON.stringify({ 'data-root': path.join(dir, 'x') }));
    const both = spawnSync(process.execPath, [BERTHD_BIN, '--config-file', path.join(dir, 'daemon.json'), '--data-root', path.join(dir, 'y')], { encoding: 'utf8' });
    expect(both.status).toBe(125);
    expect(both.stderr).toContain('specified both as a flag and in the configuration file');
    fs.writeFileSync(path.join(dir, 'daemon.json'), JSON.stringify({ 'no-such-key': true }));
    const unknown = spawnSync(process.execPath, [BERTHD_BIN, '--config-file', path.join(dir, 'daemon.json')], { encoding: 'utf8' });
    expect(unknown.status).toBe(125);
    expect(unknown.stderr).toContain("don't match any configuration option: no-such-key");
  });
});
