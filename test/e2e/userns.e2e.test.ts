/**
 * The userns plugin through the real docker CLI against berthd started with --userns-remap
 * (runc + conmon). The remap user and its ranges live in the test's own passwd/group/
 * subuid/subgid files (BERTH_USERNS_* env), so the host's /etc is not touched:
 *  - `docker info` lists name=userns; /proc/self/uid_map and gid_map inside show the mapping;
 *  - root inside owns the image's files and can write them (the rootfs is shifted);
 *  - a file created as root in a bind mount belongs on the host to the mapped uid;
 *  - a root-only (0600) host file bind-mounted in cannot be read;
 *  - a named volume is writable by root inside and owned by the mapped root on the host; an
 *    anonymous volume's copy-up keeps the owners root sees (the volumes plugin after the shift);
 *  - --userns=host runs in the host's user namespace; --privileged alone is refused (125);
 *  - a malformed subuid line stops berthd, naming the file and line;
 *  - docker cp in (also before the first start): the file belongs to root inside, to the mapped
 *    uid on the host; cp out (running and stopped), export and commit record root's files as 0 (run without remap: owned by 0).
 * `--userns-remap=default` (useradd on the host's /etc) is not run here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, TEST_IMAGE, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';
import { HOST_GID, HOST_UID, remapDir, usernsSkipReason } from './helpers/userns.js';

const skip = usernsSkipReason();

/** "uid:gid" of the entry `name` in a plain tar (the ustar header's octal fields), or null. */
function tarHeaderOwner(buf: Buffer, name: string): string | null {
  const octal = (at: number, len: number) => parseInt(buf.subarray(at, at + len).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
  for (let off = 0; off + 512 <= buf.length; ) {
    const entry = buf.subarray(off, off + 100).toString('latin1').replace(/\0.*$/s, '');
    if (entry === '') return null;
    const size = octal(off + 124, 12);
    if (entry.replace(/^\.?\//, '') === name) return `${octal(off + 108, 8)}:${octal(off + 116, 8)}`;
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return null;
}

describe.skipIf(skip)(`user namespaces through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  let shared: string;
  let own: string | undefined;
  beforeAll(async () => {
    const { dir, env } = remapDir();
    own = dir;
    d = await startBerthd({ dir, env, args: ['--userns-remap', 'berth-e2e'] });
    await d.loadTestImage();
    shared = path.join(dir, 'shared');
    fs.mkdirSync(shared, { mode: 0o777 });
    fs.chmodSync(shared, 0o777);
    fs.writeFileSync(path.join(shared, 'secret'), 'root only\n', { mode: 0o600 });
  }, 120_000);
  afterAll(async () => {
    await d?.cleanup();
    if (own) fs.rmSync(own, { recursive: true, force: true }); // our own dir (also when berthd did not start): cleanup() leaves a given one
    removeTestImageTarball();
  }, 120_000);

  const run = (opts: string[], cmd: string) => d.docker(['run', '--rm', '--network', 'none', ...opts, TEST_IMAGE, 'sh', '-c', cmd]);

  it('docker info lists name=userns with the rootfs strategy the probe chose', async () => {
    const r = await d.docker(['info', '--format', '{{json .SecurityOptions}}']);
    expect(r.code, r.stderr).toBe(0);
    const probe = fs.existsSync(path.join(REPO_ROOT, 'packages/native/dist/native/berth.node')) ? 'idmap' : 'chown';
    expect(JSON.parse(r.stdout)).toContain(`name=userns,rootfs=${probe}`);
    const text = await d.docker(['info']);
    expect(text.stdout).toMatch(/^\s+userns\s*$/m);
  }, 60_000);

  it('uid_map and gid_map inside show the remap user’s ranges; root owns and writes the image’s files', async () => {
    const r = await run([], 'cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c "%u:%g" /bin /etc/passwd; echo ok > /etc/written && cat /etc/written');
    expect(r.code, JSON.stringify(r)).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
    expect(lines.slice(0, 2)).toEqual([`0 ${HOST_UID} 65536`, `0 ${HOST_GID} 65536`]);
    expect(lines.slice(2)).toEqual(['0', '0:0', '0:0', 'ok']);
  }, 60_000);

  it('volumes under the remap: root inside writes a new named volume (the mapped root owns it on the host); an anonymous volume copied up from the image shows root’s files as 0:0', async () => {
    const named = await run(['-v', 'remapvol:/v'], 'touch /v/x && stat -c "%u:%g" /v /v/x');
    expect(named.code, JSON.stringify(named)).toBe(0);
    expect(named.stdout.trim().split('\n')).toEqual(['0:0', '0:0']);
    const onHost = fs.statSync(path.join(d.dataRoot, 'volumes', 'remapvol', '_data', 'x'));
    expect([onHost.uid, onHost.gid]).toEqual([HOST_UID, HOST_GID]);
    const anon = await run(['-v', '/etc'], 'stat -c "%u:%g" /etc/passwd');
    expect(anon.code, JSON.stringify(anon)).toBe(0);
    expect(anon.stdout.trim()).toBe('0:0');
    expect((await d.docker(['volume', 'rm', 'remapvol'])).code).toBe(0);
  }, 60_000);

  it('the start-up probe picks idmapped layers where the kernel and the native addon allow; then nothing of the image is copied up', async () => {
    const chosen = /"msg":"user namespaces: containers run as the remap user".*?"rootfs":"(\w+)"/.exec(d.log())?.[1];
    const probe = fs.existsSync(path.join(REPO_ROOT, 'packages/native/dist/native/berth.node')) ? 'idmap' : 'chown';
    expect(chosen).toBe(probe);
    const r = await d.docker(['run', '--name', 'differ', '--network', 'none', TEST_IMAGE, 'sh', '-c', 'touch /tmp/new-file']);
    expect(r.code, JSON.stringify(r)).toBe(0);
    const diff = await d.docker(['diff', 'differ']);
    expect(diff.code, diff.stderr).toBe(0);
    const lines = diff.stdout.trim().split('\n');
    expect(lines).toContain('A /tmp/new-file');
    // idmapped layers: the image's own files are not copied up (the chown strategy lists them all as changed)
    if (chosen === 'idmap') expect(lines.filter((l) => /^[AC] \/bin/.test(l))).toEqual([]);
    expect((await d.docker(['rm', 'differ'])).code).toBe(0);
  }, 60_000);

  it('a second start of the same container finds its files with the owners root gave them', async () => {
    const script = 'if [ -f /root-file ]; then stat -c "%u:%g %n" /root-file /etc/passwd; else echo kept > /root-file && chown 1000:1000 /etc/passwd && echo first; fi';
    const first = await d.docker(['run', '--name', 'again', '--network', 'none', TEST_IMAGE, 'sh', '-c', script]);
    expect(first.code, JSON.stringify(first)).toBe(0);
    expect(first.stdout.trim()).toBe('first');
    // both runs' output, in order
    const second = await d.docker(['start', '-a', 'again']);
    expect(second.code, JSON.stringify(second)).toBe(0);
    const logs = await d.docker(['logs', 'again']);
    expect(logs.stdout.trim().split('\n')).toEqual(['first', '0:0 /root-file', '1000:1000 /etc/passwd']);
    expect((await d.docker(['rm', 'again'])).code).toBe(0);
  }, 60_000);

  it('a start that fails after the rootfs was idmapped leaves no layer mount behind; an exited one neither', async () => {
    const layerMounts = () => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(`${d.dataRoot}/containers/`));
    const failed = await d.docker(['run', '--name', 'broken', '--network', 'none', TEST_IMAGE, '/no/such/command']);
    expect(failed.code).toBe(127);
    expect(layerMounts()).toEqual([]);
    const running = await d.docker(['run', '-d', '--name', 'sleeper', '--network', 'none', TEST_IMAGE, 'sleep', '30']);
    expect(running.code, JSON.stringify(running)).toBe(0);
    const probe = fs.existsSync(path.join(REPO_ROOT, 'packages/native/dist/native/berth.node'));
    if (probe) expect(layerMounts().length).toBeGreaterThan(0);
    expect((await d.docker(['rm', '-f', 'broken', 'sleeper'])).code).toBe(0);
    expect(layerMounts()).toEqual([]);
  }, 60_000);

  it('a file created as root in a bind mount belongs to the mapped uid on the host', async () => {
    const r = await run(['-v', `${shared}:/m`], 'touch /m/made-inside && stat -c "%u" /m/made-inside');
    expect(r.code, JSON.stringify(r)).toBe(0);
    expect(r.stdout.trim()).toBe('0');
    const st = fs.statSync(path.join(shared, 'made-inside'));
    expect([st.uid, st.gid]).toEqual([HOST_UID, HOST_GID]);
  }, 60_000);

  it('a root-only (0600) host file bind-mounted in cannot be read by root inside', async () => {
    const r = await run(['-v', `${shared}:/m`], 'cat /m/secret; echo "rc=$?"');
    expect(r.stdout).not.toContain('root only');
    expect(r.stdout).toMatch(/^rc=1$/m);
    expect(r.stderr + r.stdout).toMatch(/Permission denied/);
  }, 60_000);

  it('--userns=host runs in the host’s user namespace; --privileged needs it', async () => {
    const host = await run(['--userns', 'host'], 'cat /proc/self/uid_map');
    expect(host.code, JSON.stringify(host)).toBe(0);
    expect(host.stdout.trim().split(/\s+/)).toEqual(['0', '0', '4294967295']);

    const priv = await d.docker(['run', '--name', 'priv', '--privileged', TEST_IMAGE, 'true']);
    expect(priv.code).toBe(125);
    expect(priv.stderr).toContain('--userns=host');
    expect((await d.docker(['inspect', 'priv'])).code).not.toBe(0);
  }, 60_000);

  it('UsernsMode=auto (API): two containers get distinct 65536-id slices, freed at removal', async () => {
    // a second berthd whose remap user has two slices' worth of ids
    const two = remapDir(`berth-e2e:${HOST_UID}:131072\n`);
    fs.writeFileSync(two.env.BERTH_USERNS_SUBGID!, `4321:${HOST_GID}:131072\n`);
    let b: Berthd | undefined;
    try {
      b = await startBerthd({ dir: two.dir, env: two.env, args: ['--userns-remap', 'berth-e2e'] });
      await b.loadTestImage();
      const maps: string[] = [];
      const ids: string[] = [];
      for (const name of ['auto1', 'auto2']) {
        const c = await b.api('POST', `/containers/create?name=${name}`, { Image: TEST_IMAGE, Cmd: ['cat', '/proc/self/uid_map'], HostConfig: { UsernsMode: 'auto', NetworkMode: 'none' } });
        expect(c.status, c.body).toBe(201);
        ids.push((JSON.parse(c.body) as { Id: string }).Id);
        const r = await b.docker(['start', '-a', name]);
        expect(r.code, JSON.stringify(r)).toBe(0);
        maps.push(r.stdout.trim().split(/\s+/).join(' '));
      }
      expect(maps.sort()).toEqual([`0 ${HOST_UID} 65536`, `0 ${HOST_UID + 65536} 65536`]);
      const table = path.join(b.dataRoot, 'userns', 'auto.json');
      expect(Object.keys(JSON.parse(fs.readFileSync(table, 'utf8')) as object).sort()).toEqual([...ids].sort());
      // no third slice
      const third = await b.api('POST', '/containers/create?name=auto3', { Image: TEST_IMAGE, HostConfig: { UsernsMode: 'auto' } });
      expect(third.status).toBe(409);
      expect((await b.docker(['rm', 'auto1', 'auto2'])).code).toBe(0);
      expect(JSON.parse(fs.readFileSync(table, 'utf8'))).toEqual({});
    } finally {
      await b?.cleanup();
      fs.rmSync(two.dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('docker cp into a container never started gives the file to the remapped root too', async () => {
    const work = fs.mkdtempSync(path.join(own!, 'cp-fresh-'));
    try {
      const c = await d.docker(['create', '--name', 'cpfresh', '--network', 'none', TEST_IMAGE, 'stat', '-c', '%u:%g', '/put-in']);
      expect(c.code, JSON.stringify(c)).toBe(0);
      fs.writeFileSync(path.join(work, 'put-in'), 'before the first start\n');
      const cpIn = await d.docker(['cp', path.join(work, 'put-in'), 'cpfresh:/put-in']);
      expect(cpIn.code, JSON.stringify(cpIn)).toBe(0);
      // on the host at once (as dockerd), not only after the first start's shift of the layer
      const id = (await d.docker(['inspect', '-f', '{{.Id}}', 'cpfresh'])).stdout.trim();
      const onHost = fs.statSync(path.join(d.dataRoot, 'overlay', id, 'upper', 'put-in')); // the container's rw layer
      expect([onHost.uid, onHost.gid]).toEqual([HOST_UID, HOST_GID]);
      const started = await d.docker(['start', '-a', 'cpfresh']);
      expect(started.stdout.trim(), JSON.stringify(started)).toBe('0:0');
    } finally {
      await d.docker(['rm', '-f', 'cpfresh']);
      fs.rmSync(work, { recursive: true, force: true });
    }
  }, 120_000);

  it('docker cp in gives files to the remapped root; cp out, export and commit show container owners', async () => {
    const work = fs.mkdtempSync(path.join(own!, 'cp-'));
    const r = await d.docker(['run', '-d', '--name', 'cpbox', '--network', 'none', TEST_IMAGE, 'sh', '-c', 'echo x > /tmp/byroot; sleep 300']);
    expect(r.code, JSON.stringify(r)).toBe(0);
    try {
      fs.writeFileSync(path.join(work, 'put-in'), 'from the host\n');
      const cpIn = await d.docker(['cp', path.join(work, 'put-in'), 'cpbox:/tmp/put-in']);
      expect(cpIn.code, JSON.stringify(cpIn)).toBe(0);
      const inside = await d.docker(['exec', 'cpbox', 'sh', '-c', 'stat -c "%u:%g" /tmp/put-in; test -s /tmp/byroot && echo ready']);
      expect(inside.stdout.trim().split('\n'), JSON.stringify(inside)).toEqual(['0:0', 'ready']);
      const merged = (await d.docker(['inspect', '-f', '{{.GraphDriver.Data.MergedDir}}', 'cpbox'])).stdout.trim();
      const onHost = fs.statSync(path.join(merged, 'tmp/put-in'));
      expect([onHost.uid, onHost.gid]).toEqual([HOST_UID, HOST_GID]);

      // out of the running container, with its owners (-a): root inside → 0 in the tar
      const out1 = path.join(work, 'running');
      fs.mkdirSync(out1);
      expect((await d.docker(['cp', '-a', 'cpbox:/tmp/byroot', out1])).code).toBe(0);
      expect([fs.statSync(path.join(out1, 'byroot')).uid, fs.statSync(path.join(out1, 'byroot')).gid]).toEqual([0, 0]);

      expect((await d.docker(['stop', '-t', '0', 'cpbox'])).code).toBe(0);
      // a stopped one: its layer (host IDs) and the image's files (container IDs) both come out as 0
      const out2 = path.join(work, 'stopped');
      fs.mkdirSync(out2);
      for (const p of ['/tmp/byroot', '/etc/passwd']) expect((await d.docker(['cp', '-a', `cpbox:${p}`, out2])).code).toBe(0);
      for (const f of ['byroot', 'passwd']) expect([fs.statSync(path.join(out2, f)).uid, fs.statSync(path.join(out2, f)).gid]).toEqual([0, 0]);

      const exp = await d.docker(['export', '-o', path.join(work, 'export.tar'), 'cpbox']);
      expect(exp.code, JSON.stringify(exp)).toBe(0);
      const hdr = tarHeaderOwner(fs.readFileSync(path.join(work, 'export.tar')), 'tmp/byroot');
      expect(hdr).toBe('0:0');

      const commit = await d.docker(['commit', 'cpbox', 'berth-e2e-userns-commit:1']);
      expect(commit.code, JSON.stringify(commit)).toBe(0);
      const inImage = await d.docker(['run', '--rm', '--userns', 'host', '--network', 'none', 'berth-e2e-userns-commit:1', 'stat', '-c', '%u:%g', '/tmp/byroot', '/tmp/put-in']);
      expect(inImage.stdout.trim().split('\n'), JSON.stringify(inImage)).toEqual(['0:0', '0:0']);
      expect((await d.docker(['rmi', 'berth-e2e-userns-commit:1'])).code).toBe(0);
    } finally {
      await d.docker(['rm', '-f', 'cpbox']);
      fs.rmSync(work, { recursive: true, force: true });
    }
  }, 120_000);

  it('a malformed subuid line stops berthd, naming the file and line', async () => {
    const bad = remapDir(`berth-e2e:${HOST_UID}:65536\nberth-e2e:oops\n`);
    let b: Berthd | undefined;
    try {
      b = await startBerthd({ dir: bad.dir, env: bad.env, args: ['--userns-remap', 'berth-e2e'], expectFailure: true });
      expect(await b.stop()).not.toBe(0);
      expect(b.log()).toContain(`${bad.env.BERTH_USERNS_SUBUID}:2: malformed entry`);
    } finally {
      await b?.cleanup();
      fs.rmSync(bad.dir, { recursive: true, force: true });
    }
  }, 60_000);
});

/** `default` runs useradd/usermod on the host's /etc: only where the operator opts in. */
const defaultSkip = skip ?? (process.env.BERTH_E2E_USERNS_DEFAULT === '1' ? null : 'creates the berthremap user in the host’s /etc/passwd and /etc/subuid: set BERTH_E2E_USERNS_DEFAULT=1 to run it');

describe.skipIf(defaultSkip)(`--userns-remap=default${defaultSkip ? ` (skipped: ${defaultSkip})` : ''}`, () => {
  it('creates berthremap with subordinate ranges and runs containers in its mapping', async () => {
    const dir = fs.mkdtempSync(path.join('/tmp', 'bd-userns-'));
    fs.chmodSync(dir, 0o711);
    let d: Berthd | undefined;
    try {
      d = await startBerthd({ dir, args: ['--userns-remap', 'default'] });
      expect(fs.readFileSync('/etc/passwd', 'utf8')).toMatch(/^berthremap:/m);
      const range = /^berthremap:(\d+):(\d+)$/m.exec(fs.readFileSync('/etc/subuid', 'utf8'));
      expect(range, 'a berthremap line in /etc/subuid').not.toBeNull();
      await d.loadTestImage();
      const r = await d.docker(['run', '--rm', '--network', 'none', TEST_IMAGE, 'cat', '/proc/self/uid_map']);
      expect(r.code, JSON.stringify(r)).toBe(0);
      expect(r.stdout.trim().split(/\s+/)).toEqual(['0', range![1], range![2]]);
    } finally {
      await d?.cleanup();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
