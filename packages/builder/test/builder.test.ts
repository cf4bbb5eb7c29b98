/**
 * The builder over fakes of the engine's containers and the image service: the exact
 * progress stream (steps, cache, RUN containers, aux ID, tags), the cache (hits on a rebuild,
 * keys stable across a committed image's config, misses on changed files or build args,
 * --no-cache), a failing RUN (dockerd's message, the container removed per rm/forcerm),
 * --target, ONBUILD, build args, labels, and the refusals (--pull, a foreign platform).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ContainerConfig } from '@berth/core';
import type { Digest, ImageRuntimeConfig, JSONMessage } from '@berth/image-store';
import { Builder, BuildStepError } from '../src/builder.js';
import { BuildCache } from '../src/cache.js';
import { FsTree } from '../src/tree.js';
import type { BuildContainers, BuildImages, BuildOptions } from '../src/types.js';

let n = 0;
const newId = () => `sha256:${createHash('sha256').update(String(++n)).digest('hex')}` as Digest;

class FakeImages {
  readonly configs = new Map<Digest, ImageRuntimeConfig>();
  readonly names = new Map<string, Digest>();
  readonly tags: string[] = [];
  readonly layers: Array<{ createdBy: string; layer: boolean }> = [];
  add(name: string, config: ImageRuntimeConfig): Digest {
    const id = newId();
    this.configs.set(id, config);
    this.names.set(name, id);
    return id;
  }
  api(): BuildImages {
    return {
      imageId: async (name: string) => {
        const id = this.names.get(name) ?? (this.configs.has(name as Digest) ? (name as Digest) : undefined);
        if (!id) throw Object.assign(new (await import('@berth/core')).NotFoundError(`No such image: ${name}`));
        return id;
      },
      getImage: async (name: string) => ({ config: { config: this.configs.get((this.names.get(name) ?? name) as Digest) } }),
      buildImage: async (o: { config: ImageRuntimeConfig; createdBy: string; layer: unknown }) => {
        const id = newId();
        // the image keeps what docker commit keeps: null fields dropped
        this.configs.set(id, Object.fromEntries(Object.entries(o.config).filter(([, v]) => v !== null)));
        this.layers.push({ createdBy: o.createdBy, layer: o.layer !== null });
        if (o.layer) (o.layer as NodeJS.ReadableStream).resume();
        return id;
      },
      commit: async (o: { config: ContainerConfig; createdBy?: string }) => {
        const id = newId();
        this.configs.set(id, Object.fromEntries(Object.entries(o.config).filter(([, v]) => v !== null)) as ImageRuntimeConfig);
        this.layers.push({ createdBy: o.createdBy ?? '', layer: true });
        return id;
      },
      tag: async (_id: string, repo: string, tag?: string) => void this.tags.push(`${repo}:${tag}`),
    } as unknown as BuildImages;
  }
}

class FakeContainers implements BuildContainers {
  readonly created: ContainerConfig[] = [];
  readonly removed: string[] = [];
  readonly hostConfigs: unknown[] = [];
  constructor(private readonly root: string) {}
  async create(req: { config: ContainerConfig; hostConfig: unknown }) {
    this.created.push(req.config);
    this.hostConfigs.push(req.hostConfig);
    return { id: createHash('sha256').update(`c${this.created.length}`).digest('hex') };
  }
  async start() {}
  async *output() {
    yield Buffer.from('out\n');
  }
  async wait(id: string) {
    const c = this.created[this.ids().indexOf(id)];
    return { StatusCode: (c.Cmd ?? []).join(' ').includes('false') ? 1 : 0 };
  }
  async remove(id: string) {
    this.removed.push(id);
  }
  async mountRootfs() {
    return { path: this.root, release: async () => {} };
  }
  ids() {
    return this.created.map((_, i) => createHash('sha256').update(`c${i + 1}`).digest('hex'));
  }
}

describe('Builder', () => {
  let dir = '';
  let images: FakeImages;
  let containers: FakeContainers;
  let builder: Builder;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-builder-'));
    for (const d of ['ctx', 'scratch', 'data', 'stage']) fs.mkdirSync(path.join(dir, d));
    fs.writeFileSync(path.join(dir, 'ctx', 'a.txt'), 'a\n');
    fs.writeFileSync(path.join(dir, 'stage', 'built.bin'), 'bin\n');
    images = new FakeImages();
    images.add('base', { Env: ['PATH=/bin'], Cmd: ['sh'] });
    containers = new FakeContainers(path.join(dir, 'stage'));
    builder = new Builder(images.api(), containers, new BuildCache(path.join(dir, 'data'), async (id) => images.configs.has(id)));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const build = async (text: string, o: Partial<BuildOptions> = {}) => {
    const msgs: JSONMessage[] = [];
    let error: unknown = null;
    let id: Digest | null = null;
    try {
      id = await builder.build({ tree: new FsTree(path.join(dir, 'ctx')), dockerfile: 'Dockerfile', text }, path.join(dir, 'scratch'), { emit: (m) => msgs.push(m), signal: new AbortController().signal, ...o });
    } catch (err) {
      error = err;
    }
    return { id, error, text: msgs.map((m) => m.stream ?? '').join(''), msgs };
  };
  const short = (id: string) => id.slice(7, 19);
  const cid = (i: number) => containers.ids()[i].slice(0, 12);

  it('streams Docker\'s progress messages, then the aux ID and the tags', async () => {
    const r = await build('FROM base\nENV A=1\nRUN echo hi\nCOPY a.txt /a.txt\n', { tags: ['app', 'reg.example:5000/x/app:v1'] });
    expect(r.error).toBeNull();
    const ids = [...images.configs.keys()];
    expect(r.text).toBe(
      [
        'Step 1/4 : FROM base',
        ` ---> ${short(ids[0])}`,
        'Step 2/4 : ENV A=1',
        ` ---> ${short(ids[1])}`,
        'Step 3/4 : RUN echo hi',
        ` ---> Running in ${cid(0)}`,
        'out',
        `Removing intermediate container ${cid(0)}`,
        ` ---> ${short(ids[2])}`,
        'Step 4/4 : COPY a.txt /a.txt',
        ` ---> ${short(ids[3])}`,
        `Successfully built ${short(ids[3])}`,
        'Successfully tagged app:latest',
        'Successfully tagged reg.example:5000/x/app:v1',
        '',
      ].join('\n'),
    );
    expect(r.msgs.find((m) => m.aux)).toEqual({ aux: { ID: ids[3] } });
    expect(images.tags).toEqual(['app:latest', 'reg.example:5000/x/app:v1']);
    // the RUN container: the image's config with the command, no entrypoint, AutoRemove off
    expect(containers.created[0]).toMatchObject({ Image: ids[1], Cmd: ['/bin/sh', '-c', 'echo hi'], Entrypoint: null, Env: ['PATH=/bin', 'A=1'] });
    expect(containers.hostConfigs[0]).toEqual({ AutoRemove: false });
    expect(images.layers.map((l) => l.createdBy)).toEqual(['/bin/sh -c #(nop) ENV A=1', '/bin/sh -c echo hi', expect.stringMatching(/^\/bin\/sh -c #\(nop\) COPY multi:[0-9a-f]{64} in \/a\.txt$/)]);
  });

  it('a rebuild takes every step from the cache, also after a committed image dropped null fields', async () => {
    // a docker-save image's config has fields a commit does not keep (Hostname, Image…) and an ONBUILD trigger
    images.add('saved', { Hostname: '', Image: 'sha256:0', Env: ['PATH=/bin'], OnBuild: ['RUN echo t'] });
    const text = 'FROM saved\nARG V=1\nRUN echo $V\nENV B=2\nCOPY a.txt /a.txt\nCMD ["x"]\n';
    const first = await build(text);
    const again = await build(text);
    expect(again.id).toBe(first.id);
    expect(again.text.match(/Using cache/g)).toHaveLength(6);
    expect(containers.created).toHaveLength(2);
    // a changed file misses from its COPY on; a changed build arg from its RUN on
    fs.writeFileSync(path.join(dir, 'ctx', 'a.txt'), 'changed\n');
    const changed = await build(text);
    expect(changed.text.match(/Using cache/g)).toHaveLength(4);
    const arg = await build(text, { buildArgs: { V: '2' } });
    expect(arg.text.match(/Using cache/g)).toHaveLength(2);
    expect(containers.created).toHaveLength(3);
    const none = await build(text, { noCache: true });
    expect(none.text).not.toMatch(/Using cache/);
  });

  it('a failing RUN ends with dockerd\'s message and its code; the container is removed unless rm=false', async () => {
    const r = await build('FROM base\nRUN false\n');
    expect(r.error).toBeInstanceOf(BuildStepError);
    expect((r.error as BuildStepError).message).toBe("The command '/bin/sh -c false' returned a non-zero code: 1");
    expect((r.error as BuildStepError).code).toBe(1);
    expect(containers.removed).toEqual([containers.ids()[0]]);
    await build('FROM base\nRUN ["false", "x"]\n', { rm: false });
    expect(containers.removed).toHaveLength(1);
    await build('FROM base\nRUN ["false", "y"]\n', { rm: false, forceRm: true });
    expect(containers.removed).toHaveLength(2);
  });

  it('multi-stage: --target stops at the stage, COPY --from reads the stage\'s root filesystem', async () => {
    const text = 'FROM base AS one\nRUN echo one\nFROM base AS two\nCOPY --from=one /built.bin /b\nFROM base\nRUN echo three\n';
    const r = await build(text, { target: 'two' });
    expect(r.error).toBeNull();
    expect(r.text).toMatch(/Step 4\/4 : COPY --from=one \/built.bin \/b/);
    expect(r.text).not.toMatch(/echo three/);
    expect((await build(text, { target: 'nope' })).error).toMatchObject({ message: 'failed to reach build target nope in Dockerfile' });
  });

  it('runs the base image\'s ONBUILD triggers at FROM and leaves them out of the new image', async () => {
    images.add('parent', { OnBuild: ['RUN echo triggered'], Cmd: ['sh'] });
    const r = await build('FROM parent\nENV X=1\n');
    expect(r.text).toMatch(/# Executing 1 build trigger\n ---> Running in/);
    expect(containers.created[0].Cmd).toEqual(['/bin/sh', '-c', 'echo triggered']);
    expect(images.configs.get(r.id!)!.OnBuild).toBeUndefined();
  });

  it('build args: ARG before FROM, declared ARGs in RUN\'s env, proxy args predefined, unused ones warned about; --label added last', async () => {
    const r = await build('ARG IMG=base\nFROM ${IMG}\nARG GREETING=hi\nRUN echo $GREETING\n', { buildArgs: { GREETING: 'yo', UNUSED: 'x', HTTP_PROXY: 'http://p' }, labels: { a: 'b' } });
    expect(r.error).toBeNull();
    expect(r.text).toMatch(/^Step 1\/5 : ARG IMG=base$/m);
    expect(r.text).toMatch(/^Step 5\/5 : LABEL "a"="b"$/m);
    // the proxy arg is in RUN's environment without an ARG, and not reported as unused
    expect(containers.created[0].Env).toEqual(['PATH=/bin', 'GREETING=yo', 'HTTP_PROXY=http://p']);
    expect(r.text).toMatch(/\[Warning\] One or more build-args \[UNUSED\] were not consumed/);
    expect(images.configs.get(r.id!)!.Env).toEqual(['PATH=/bin']);
    expect(images.configs.get(r.id!)!.Labels).toEqual({ a: 'b' });
  });

  it('metadata instructions set the image config as dockerd does', async () => {
    const r = await build(
      'FROM base\nENV HOME_DIR=/srv\nWORKDIR $HOME_DIR\nWORKDIR app\nUSER 10:20\nEXPOSE 80 53/udp\nVOLUME ["/data"]\nSTOPSIGNAL SIGINT\nSHELL ["/bin/ash", "-c"]\nENTRYPOINT run\nHEALTHCHECK --interval=1m30s --timeout=500ms --retries=2 CMD ["check"]\nONBUILD copy . /x\n',
    );
    expect(r.error).toBeNull();
    const c = images.configs.get(r.id!)!;
    expect(c).toMatchObject({
      WorkingDir: '/srv/app',
      User: '10:20',
      ExposedPorts: { '80/tcp': {}, '53/udp': {} },
      Volumes: { '/data': {} },
      StopSignal: 'SIGINT',
      Shell: ['/bin/ash', '-c'],
      Entrypoint: ['/bin/ash', '-c', 'run'],
      Healthcheck: { Test: ['CMD', 'check'], Interval: 90e9, Timeout: 5e8, Retries: 2 },
      OnBuild: ['COPY . /x'],
    });
    // ENTRYPOINT without a CMD of this stage clears the inherited CMD
    expect(c.Cmd).toBeUndefined();
  });

  it('refuses --pull, a foreign platform, a missing base image, a RUN on scratch', async () => {
    expect((await build('FROM base\n', { pull: true })).error).toMatchObject({ message: expect.stringMatching(/--pull is not supported/) });
    expect((await build('FROM --platform=linux/s390x base\n')).error).toMatchObject({ message: expect.stringMatching(/FROM --platform=linux\/s390x: berth builds for/) });
    expect((await build('FROM nothere\n')).error).toMatchObject({ message: expect.stringMatching(/pull access denied for nothere/) });
    expect((await build('FROM scratch\nRUN true\n')).error).toMatchObject({ message: expect.stringMatching(/needs a base image/) });
  });

  it('--chown takes names from the image it builds on (user alone names the group too), numbers without looking', async () => {
    fs.mkdirSync(path.join(dir, 'stage', 'etc'));
    fs.writeFileSync(path.join(dir, 'stage', 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\napp:x:1001:1001::/home/app:/bin/sh\n');
    fs.writeFileSync(path.join(dir, 'stage', 'etc', 'group'), 'root:x:0:\napp:x:1001:\nstaff:x:50:\n');
    const owners = async (text: string) => {
      const r = await build(text);
      expect(r.error).toBeNull();
      return r;
    };
    await owners('FROM base\nCOPY --chown=app a.txt /\n');
    await owners('FROM base\nCOPY --chown=app:staff a.txt /b\n');
    await owners('FROM base\nCOPY --chown=7:8 a.txt /c\n');
    expect((await build('FROM base\nCOPY --chown=nobody a.txt /\n')).error).toMatchObject({ message: 'unable to convert uid/gid chown string to host mapping: can\'t find uid for user nobody: no such user: nobody' });
    expect((await build('FROM base\nCOPY --chown=app:wheel a.txt /\n')).error).toMatchObject({ message: expect.stringMatching(/no such group: wheel/) });
    expect((await build('FROM base\nCOPY --chown=a:b:c a.txt /\n')).error).toMatchObject({ message: 'invalid chown string format: a:b:c' });
  });
});
