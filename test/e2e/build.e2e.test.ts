/**
 * docker build (classic builder, POST /build) end to end through the real docker CLI
 * (DOCKER_BUILDKIT=0) against a real berthd (runc + conmon): a multi-stage Dockerfile using
 * every supported instruction, the image it makes run and inspected, a second build fully
 * cached, a failing RUN (dockerd's message, no container left), docker-py's images.build,
 * hostile contexts (../ entries, symlinks pointing outside), and the 400s (syntax, remote).
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { berthdSkipReason, DOCKER_BIN, removeTestImageTarball, startBerthd, TEST_IMAGE, which, type Berthd } from './helpers/berthd.js';
import { composeSkipReason, runCompose } from './helpers/compose.js';

const skip = berthdSkipReason() ?? (which('docker') ? null : 'the docker CLI is not installed');
const BUILD_ENV = { DOCKER_BUILDKIT: '0' };

function pythonDockerMissing(): string | null {
  try {
    execFileSync('python3', ['-c', 'import docker'], { stdio: 'ignore' });
    return null;
  } catch {
    return 'python3-docker (docker-py) is not installed (scripts/install-deps.sh installs it with docker-compose)';
  }
}

/** A tar of `entries` (name → content, or a symlink) as a Buffer. */
async function tarOf(entries: Array<{ name: string; body?: string; link?: string }>): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.link !== undefined) pack.entry({ name: e.name, type: 'symlink', linkname: e.link });
    else pack.entry({ name: e.name, mode: 0o644 }, e.body ?? '');
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

function postTar(socketPath: string, urlPath: string, body: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method: 'POST', path: urlPath, headers: { 'Content-Type': 'application/x-tar', 'Content-Length': body.length } }, (res) => {
      let data = '';
      res.on('data', (c: Buffer) => (data += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const PARENT = `FROM ${TEST_IMAGE}
ONBUILD RUN echo triggered > /onbuild.txt
`;

const MAIN = `# escape=\\
ARG BASE=bt-parent
FROM \${BASE} AS builder
ARG MSG=default
RUN echo "$MSG" > /msg.txt \\
 && mkdir -p /out && cp /msg.txt /out/

FROM ${TEST_IMAGE}
LABEL org.example.name="berth test"
ENV GREETING="hello world" APP_HOME=/app
WORKDIR $APP_HOME
COPY --from=builder /out/msg.txt ./
COPY --from=builder /onbuild.txt ./
COPY --chown=1000:1000 files/ ./files/
ADD archive.tar ./extracted/
COPY *.conf /etc/app/
COPY --chown=daemon:nogroup one.conf /etc/app/named.conf
SHELL ["/bin/sh", "-c"]
RUN echo "$GREETING" > greeting.txt
USER 1000:1000
EXPOSE 8080/tcp
VOLUME /data
HEALTHCHECK --interval=5s --timeout=2s --retries=2 CMD test -f /app/greeting.txt
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/msg.txt"]
`;

describe.skipIf(skip)(`docker build (classic builder) through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  let ctxDir = '';

  beforeAll(async () => {
    d = await startBerthd();
    await d.loadTestImage();
    ctxDir = path.join(d.dir, 'ctx');
    fs.mkdirSync(path.join(ctxDir, 'files', 'sub'), { recursive: true });
    fs.mkdirSync(path.join(ctxDir, 'parent'));
    fs.writeFileSync(path.join(ctxDir, 'parent', 'Dockerfile'), PARENT);
    fs.writeFileSync(path.join(ctxDir, 'Dockerfile'), MAIN);
    fs.writeFileSync(path.join(ctxDir, 'files', 'a.txt'), 'file a\n');
    fs.writeFileSync(path.join(ctxDir, 'files', 'sub', 'b.txt'), 'file b\n');
    fs.writeFileSync(path.join(ctxDir, 'one.conf'), 'one\n');
    fs.writeFileSync(path.join(ctxDir, 'two.conf'), 'two\n');
    fs.writeFileSync(path.join(ctxDir, 'secret.key'), 'never sent\n');
    fs.writeFileSync(path.join(ctxDir, '.dockerignore'), 'secret.key\nparent\n');
    fs.writeFileSync(path.join(ctxDir, 'archive.tar'), await tarOf([{ name: 'inner/c.txt', body: 'from the archive\n' }]));
  }, 180_000);

  afterAll(async () => {
    await d?.cleanup();
    removeTestImageTarball();
  });

  it('builds a multi-stage Dockerfile with every instruction; the image runs with its files, env, user, workdir and healthcheck', async () => {
    const parent = await d.docker(['build', '-t', 'bt-parent', path.join(ctxDir, 'parent')], { env: BUILD_ENV, timeoutMs: 180_000 });
    expect(parent.stdout, parent.stderr).toMatch(/Successfully tagged bt-parent:latest/);
    const r = await d.docker(['build', '--build-arg', 'MSG=from-arg', '--label', 'extra=1', '-t', 'bt:1', '-t', 'bt:2', ctxDir], { env: BUILD_ENV, timeoutMs: 300_000 });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/^Step 1\/\d+ : ARG BASE=bt-parent$/m);
    expect(r.stdout).toMatch(/# Executing 1 build trigger/);
    expect(r.stdout).toMatch(/ ---> Running in [0-9a-f]{12}/);
    expect(r.stdout).toMatch(/Removing intermediate container [0-9a-f]{12}/);
    expect(r.stdout).toMatch(/Successfully built [0-9a-f]{12}/);
    expect(r.stdout).toMatch(/Successfully tagged bt:1/);
    expect(r.stdout).toMatch(/Successfully tagged bt:2/);

    const run = await d.docker(['run', '--rm', 'bt:1']);
    expect(run.stdout).toBe('from-arg\n');
    const files = await d.docker(['run', '--rm', 'bt:1', 'cat onbuild.txt greeting.txt files/a.txt files/sub/b.txt extracted/inner/c.txt /etc/app/one.conf /etc/app/two.conf; id -u; pwd; ls -ln files | tail -n +2 | awk "{print \\$3\\":\\"\\$4}"; stat -c %u:%g /etc/app/named.conf; test -e secret.key || echo no-secret']);
    expect(files.stdout.split('\n')).toEqual(['triggered', 'hello world', 'file a', 'file b', 'from the archive', 'one', 'two', '1000', '/app', '1000:1000', '1000:1000', '1:65534', 'no-secret', '']);

    const inspect = JSON.parse((await d.docker(['image', 'inspect', 'bt:1'])).stdout)[0];
    const c = inspect.Config;
    expect(c.Env).toEqual(expect.arrayContaining(['GREETING=hello world', 'APP_HOME=/app']));
    expect(c.User).toBe('1000:1000');
    expect(c.WorkingDir).toBe('/app');
    expect(c.Healthcheck).toEqual({ Test: ['CMD-SHELL', 'test -f /app/greeting.txt'], Interval: 5e9, Timeout: 2e9, Retries: 2 });
    expect(c.ExposedPorts).toEqual({ '8080/tcp': {} });
    expect(c.Volumes).toEqual({ '/data': {} });
    expect(c.Labels).toEqual({ 'org.example.name': 'berth test', extra: '1' });
    expect(c.StopSignal).toBe('SIGTERM');
    expect(c.Entrypoint).toEqual(['/bin/sh', '-c']);
    expect(c.Cmd).toEqual(['cat /app/msg.txt']);
    expect(c.Shell).toEqual(['/bin/sh', '-c']);
    // the build's containers are gone
    expect((await d.docker(['ps', '-aq'])).stdout.trim()).toBe('');

    // the second build: every step after each FROM comes from the cache, same image
    const again = await d.docker(['build', '--build-arg', 'MSG=from-arg', '--label', 'extra=1', '-t', 'bt:1', ctxDir], { env: BUILD_ENV, timeoutMs: 300_000 });
    expect(again.code, again.stderr).toBe(0);
    const steps = again.stdout.split(/^Step \d+\/\d+ : /m).slice(1);
    const notFrom = steps.filter((s) => !/^(FROM|ARG BASE)/.test(s));
    expect(notFrom.length).toBeGreaterThan(15);
    for (const s of notFrom) expect(s, again.stdout).toMatch(/ ---> Using cache/);
    expect(again.stdout).not.toMatch(/Running in/);
    expect(again.stdout.match(/Successfully built ([0-9a-f]{12})/)![1]).toBe(inspect.Id.slice(7, 19));
  }, 600_000);

  it('a failing RUN exits non-zero with dockerd\'s message and leaves no container', async () => {
    const dir = path.join(d.dir, 'ctx-fail');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'Dockerfile'), `FROM ${TEST_IMAGE}\nRUN echo before\nRUN false\n`);
    const r = await d.docker(['build', dir], { env: BUILD_ENV, timeoutMs: 180_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain("The command '/bin/sh -c false' returned a non-zero code: 1");
    expect((await d.docker(['ps', '-aq'])).stdout.trim()).toBe('');
  }, 300_000);

  it('-q prints only the image ID, --iidfile gets it, a new WORKDIR exists in RUN and in the container', async () => {
    const dir = path.join(d.dir, 'ctx-q');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'Dockerfile'), `FROM ${TEST_IMAGE}\nWORKDIR /w/x\nRUN pwd > /pwd.txt\nWORKDIR /w/y\n`);
    const iid = path.join(d.dir, 'iid');
    const first = await d.docker(['build', '--iidfile', iid, dir], { env: BUILD_ENV, timeoutMs: 180_000 });
    expect(first.code, first.stderr).toBe(0);
    // the CLI writes the aux message's ID
    const id = fs.readFileSync(iid, 'utf8');
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const r = await d.docker(['build', '-q', dir], { env: BUILD_ENV, timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${id}\n`);
    const run = await d.docker(['run', '--rm', id, 'sh', '-c', 'cat /pwd.txt; pwd']);
    expect(run.stdout, run.stderr).toBe('/w/x\n/w/y\n');
  }, 300_000);

  it('--memory and --shm-size apply to the RUN containers', async () => {
    const dir = path.join(d.dir, 'ctx-res');
    fs.mkdirSync(dir);
    const probe = 'cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; df -k /dev/shm | tail -1';
    fs.writeFileSync(path.join(dir, 'Dockerfile'), `FROM ${TEST_IMAGE}\nRUN ${probe}\n`);
    const r = await d.docker(['build', '--no-cache', '--memory', '64m', '--shm-size', '32m', dir], { env: BUILD_ENV, timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^67108864$/m);
    expect(r.stdout).toMatch(/^shm\s+32768\s/m);
  }, 300_000);

  it('a client that goes away mid-RUN: the build stops, its container and its context dir are removed', async () => {
    const dir = path.join(d.dir, 'ctx-gone');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'Dockerfile'), `FROM ${TEST_IMAGE}\nRUN echo started && sleep 600\n`);
    const child = spawn(DOCKER_BIN, ['build', dir], { env: { ...process.env, ...BUILD_ENV, DOCKER_HOST: d.host, DOCKER_CONFIG: path.join(d.dir, 'docker-config') }, stdio: ['ignore', 'pipe', 'pipe'] });
    const closed = new Promise((r) => child.on('close', r));
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (/^started$/m.test(out)) resolve();
      });
      child.on('close', () => reject(new Error(`docker build ended before its RUN started: ${out}`)));
    });
    expect((await d.docker(['ps', '-q'])).stdout.trim()).not.toBe('');
    child.kill('SIGKILL');
    await closed;
    const tmp = path.join(d.dataRoot, 'image', 'tmp');
    for (let i = 0; ; i++) {
      const left = (await d.docker(['ps', '-aq'])).stdout.trim();
      const dirs = fs.readdirSync(tmp).filter((n) => n.startsWith('build-'));
      if (!left && dirs.length === 0) break;
      if (i > 300) throw new Error(`left behind: containers [${left}], dirs [${dirs.join(' ')}]`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 300_000);

  it('docker-py images.build builds and tags', async (t) => {
    const reason = pythonDockerMissing();
    if (reason) return t.skip(reason);
    const dir = path.join(d.dir, 'ctx-py');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'Dockerfile'), `FROM ${TEST_IMAGE}\nENV FROM_PY=1\nRUN echo py > /py.txt\n`);
    const script = `import docker,sys\nc=docker.DockerClient(base_url=sys.argv[1])\nimg,logs=c.images.build(path=sys.argv[2],tag='bt-py:1',rm=True)\nprint(img.id)\n`;
    const out = execFileSync('python3', ['-c', script, d.host, dir], { encoding: 'utf8', timeout: 180_000 });
    expect(out.trim()).toMatch(/^sha256:[0-9a-f]{64}$/);
    const run = await d.docker(['run', '--rm', 'bt-py:1', 'sh', '-c', 'cat /py.txt; echo $FROM_PY']);
    expect(run.stdout).toBe('py\n1\n');
  }, 300_000);

  it('docker-compose (1.29) builds a `build:` service with args and runs it with a named volume', async (t) => {
    const composeSkip = composeSkipReason();
    if (composeSkip) return t.skip(composeSkip);
    const proj = path.join(d.dir, 'compose');
    fs.mkdirSync(proj);
    fs.writeFileSync(path.join(proj, 'Dockerfile'), `FROM ${TEST_IMAGE}\nARG MSG=default\nRUN echo "$MSG" > /msg\n`);
    fs.writeFileSync(
      path.join(proj, 'docker-compose.yml'),
      [
        "version: '3.8'",
        'services:',
        '  app:',
        '    build:',
        '      context: .',
        '      network: none',
        '      args:',
        '        MSG: from-compose',
        '    network_mode: none',
        "    command: ['sh', '-c', 'cat /msg >> /data/log && cat /data/log']",
        '    volumes:',
        '      - data:/data',
        'volumes:',
        '  data: {}',
        '',
      ].join('\n'),
    );
    const compose = async (args: string[]) => {
      const r = await runCompose(d, proj, 'bproj', args);
      return { code: r.code, out: `${r.stdout}${r.stderr}` };
    };
    try {
      const up = await compose(['up', '--build', '--exit-code-from', 'app']);
      expect(up.code, up.out).toBe(0);
      expect(up.out).toMatch(/from-compose/);
      // a second up: the image comes from the cache, the volume keeps the first run's line
      const again = await compose(['up', '--build', '--exit-code-from', 'app']);
      expect(again.code, again.out).toBe(0);
      expect(again.out).toMatch(/from-compose\s*\n.*from-compose/s);
    } finally {
      await compose(['down', '-v', '--rmi', 'local']);
    }
    expect((await d.docker(['ps', '-aq'])).stdout.trim()).toBe('');
  }, 600_000);

  it('a hostile context stays inside: ../ entries are refused, a symlink pointing outside is copied as a link', async () => {
    const outside = path.join(path.dirname(d.dataRoot), 'escaped.txt');
    const evil = await tarOf([
      { name: 'Dockerfile', body: `FROM ${TEST_IMAGE}\nCOPY . /ctx/\n` },
      { name: '../escaped.txt', body: 'outside' },
    ]);
    const refused = await d.docker(['build', '-'], { env: BUILD_ENV, input: evil, timeoutMs: 120_000 });
    expect(refused.code).not.toBe(0);
    expect(fs.existsSync(outside)).toBe(false);

    const links = await tarOf([
      { name: 'Dockerfile', body: `FROM ${TEST_IMAGE}\nCOPY abs /abs\nCOPY dir/secret /via-dir\n` },
      { name: 'abs', link: '/etc/hostname' },
      { name: 'dir', link: '/etc' },
    ]);
    const r = await d.docker(['build', '-t', 'bt-links', '-'], { env: BUILD_ENV, input: links, timeoutMs: 120_000 });
    // dir/secret resolves inside the context (dir → /etc of the context, which has no secret)
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toMatch(/dir\/secret/);
    const ok = await tarOf([
      { name: 'Dockerfile', body: `FROM ${TEST_IMAGE}\nCOPY abs /abs\n` },
      { name: 'abs', link: '/etc/hostname' },
    ]);
    const r2 = await d.docker(['build', '-t', 'bt-links', '-'], { env: BUILD_ENV, input: ok, timeoutMs: 120_000 });
    expect(r2.code, r2.stderr).toBe(0);
    const link = await d.docker(['run', '--rm', 'bt-links', 'readlink', '/abs']);
    expect(link.stdout, link.stderr).toBe('/etc/hostname\n');
  }, 300_000);

  it('answers 400 for a Dockerfile syntax error (with the line), an unknown instruction and a remote context', async () => {
    const bad = await postTar(d.socket, '/build', await tarOf([{ name: 'Dockerfile', body: `FROM ${TEST_IMAGE}\nRUN true\nFROOB x\n` }]));
    expect(bad.status).toBe(400);
    expect(bad.body).toMatch(/line 3: unknown instruction: FROOB/);
    const remote = await postTar(d.socket, '/build?remote=https%3A%2F%2Fexample.invalid%2Fctx.tar', Buffer.alloc(0));
    expect(remote.status).toBe(400);
    expect(remote.body).toMatch(/remote build contexts/);
  }, 120_000);
});
