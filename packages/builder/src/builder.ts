/**
 * The classic builder's evaluator: stages (FROM, `AS`, `--target`), one image per step as
 * dockerd's classic builder makes them, each step looked up in the build cache first. RUN is a
 * container created and started through the engine (so every plugin's hooks apply) and
 * committed with the image service; COPY/ADD write a layer without a container; the other
 * instructions change the image config only (metadata.ts). The progress stream is Docker's.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InvalidParameterError, NotFoundError, NotImplementedError, SystemError, shortId, type ContainerConfig } from '@berth/core';
import { familiarName, familiarString, hostPlatform, parseNormalizedNamed, splitWords, type Digest, type ImageRuntimeConfig } from '@berth/image-store';
import type { BuildCache } from './cache.js';
import { cacheKey } from './cache.js';
import type { BuildContext } from './context.js';
import { chownNeedsImage, parseChownSpec, resolveChown, type ChownSpec } from './chown.js';
import { checksum, collect, layerTar } from './copy.js';
import { expand, type Vars } from './expand.js';
import { applyMetadata, declareArg, PROXY_ARGS, type StageState } from './metadata.js';
import { parseDockerfile, parseTrigger, type Step } from './parse.js';
import { FsTree, type SourceTree } from './tree.js';
import type { BuildContainers, BuildImages, BuildOptions } from './types.js';

/** A step failed after the stream started: the message is dockerd's, `code` the RUN's exit code. */
export class BuildStepError extends SystemError {
  constructor(
    message: string,
    readonly code?: number,
  ) {
    super(message);
  }
}

interface Stage {
  name: string | null;
  steps: Step[];
}

function splitStages(steps: Step[], vars: Vars): Stage[] {
  const stages: Stage[] = [];
  for (const s of steps) {
    if (s.keyword === 'FROM') {
      const w = splitWords(s.args);
      if (w.length !== 1 && !(w.length === 3 && w[1].toUpperCase() === 'AS')) throw new InvalidParameterError(`Dockerfile parse error line ${s.line}: FROM requires either one or three arguments`);
      stages.push({ name: w[2] ? expand(w[2], vars).toLowerCase() : null, steps: [s] });
    } else stages[stages.length - 1].steps.push(s);
  }
  return stages;
}

export class Builder {
  constructor(
    private readonly images: BuildImages,
    private readonly containers: BuildContainers,
    private readonly cache: BuildCache,
  ) {}

  /** Runs the Dockerfile of `ctx`; `scratch` is a temp dir for ADD's archives (the caller removes it). Returns the image ID. */
  async build(ctx: BuildContext, scratch: string, opts: BuildOptions): Promise<Digest> {
    if (opts.pull) throw new NotImplementedError('--pull is not supported by berth: it builds from local images; run docker pull first');
    for (const t of opts.tags ?? []) if (parseNormalizedNamed(t).digest) throw new InvalidParameterError(`invalid tag ${t}: a tag cannot hold a digest`);
    checkPlatform(opts.platform, 'platform');
    const parsed = parseDockerfile(ctx.text);
    const buildArgs = opts.buildArgs ?? {};
    const used = new Set<string>();
    // meta ARGs (before the first FROM): only FROM lines see them
    const meta: Vars = new Map();
    for (const s of parsed.preamble) for (const [k, v] of declareArg(s, new Map(), buildArgs, used)) meta.set(k, v);
    let stages = splitStages(parsed.steps, meta);
    if (opts.target) {
      const i = stages.findIndex((s) => s.name === opts.target!.toLowerCase());
      if (i < 0) throw new InvalidParameterError(`failed to reach build target ${opts.target} in Dockerfile`);
      stages = stages.slice(0, i + 1);
    }
    const labels = Object.entries(opts.labels ?? {});
    if (labels.length) {
      const text = labels.map(([k, v]) => `${JSON.stringify(k)}=${JSON.stringify(v)}`).join(' ');
      stages[stages.length - 1].steps.push({ keyword: 'LABEL', args: text, flags: new Map(), json: null, line: 0, original: `LABEL ${text}` });
    }
    const total = parsed.preamble.length + stages.reduce((n, s) => n + s.steps.length, 0);
    let n = 0;
    const say = (text: string) => opts.emit({ stream: text });
    for (const s of parsed.preamble) say(`Step ${++n}/${total} : ${s.original}\n`);
    const done: Array<{ name: string | null; image: Digest | null }> = [];
    let last: Digest | null = null;
    for (const stage of stages) {
      const state = await this.from(stage.steps[0], meta, done, buildArgs, used, () => say(`Step ${++n}/${total} : ${stage.steps[0].original}\n`), parsed.escape, opts, scratch, ctx);
      for (const step of stage.steps.slice(1)) {
        say(`Step ${++n}/${total} : ${step.original}\n`);
        await this.step(step, state, done, ctx.tree, scratch, opts, buildArgs, used);
      }
      done.push({ name: stage.name, image: state.image });
      last = state.image;
    }
    if (!last) throw new InvalidParameterError('No image was generated. Is your Dockerfile empty?');
    const unused = Object.keys(buildArgs).filter((k) => !used.has(k) && !PROXY_ARGS.includes(k));
    if (unused.length) say(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed\n`);
    opts.emit({ aux: { ID: last } });
    say(`Successfully built ${shortId(last)}\n`);
    for (const t of opts.tags ?? []) {
      const ref = parseNormalizedNamed(t);
      await this.images.tag(last, familiarName(ref), ref.tag ?? 'latest');
      say(`Successfully tagged ${familiarString({ ...ref, tag: ref.tag ?? 'latest' })}\n`);
    }
    return last;
  }

  /** FROM: the base (scratch, an earlier stage, a local image), then the base's ONBUILD triggers. */
  private async from(
    step: Step,
    meta: Vars,
    done: Array<{ name: string | null; image: Digest | null }>,
    buildArgs: Record<string, string | null>,
    used: Set<string>,
    announce: () => void,
    escape: string,
    opts: BuildOptions,
    scratch: string,
    ctx: BuildContext,
  ): Promise<StageState> {
    announce();
    const platform = step.flags.get('platform');
    if (platform) checkPlatform(expand(platform, meta), 'FROM --platform');
    const name = expand(splitWords(step.args)[0], meta);
    const prior = done.find((d) => d.name === name.toLowerCase());
    let image: Digest | null;
    if (name.toLowerCase() === 'scratch') image = null;
    else if (prior) image = prior.image;
    else {
      try {
        image = await this.images.imageId(name);
      } catch (err) {
        if (err instanceof NotFoundError) throw new NotFoundError(`pull access denied for ${name}: berth builds from local images only; pull it first (docker pull ${name})`);
        throw err;
      }
    }
    const config = image ? runtimeConfig((await this.images.getImage(image)).config.config) : {};
    if (image) opts.emit({ stream: ` ---> ${shortId(image)}\n` });
    const state: StageState = { image, config, args: new Map(), meta, cmdSet: false, escape };
    const triggers = config.OnBuild ?? [];
    if (triggers.length) {
      opts.emit({ stream: `# Executing ${triggers.length} build trigger${triggers.length > 1 ? 's' : ''}\n` });
      delete state.config.OnBuild;
      for (const t of triggers) await this.step(parseTrigger(t), state, done, ctx.tree, scratch, opts, buildArgs, used);
    }
    return state;
  }

  private async step(
    step: Step,
    state: StageState,
    done: Array<{ name: string | null; image: Digest | null }>,
    context: SourceTree,
    scratch: string,
    opts: BuildOptions,
    buildArgs: Record<string, string | null>,
    used: Set<string>,
  ): Promise<void> {
    if (step.keyword === 'FROM') throw new InvalidParameterError('FROM inside a stage');
    if (step.keyword === 'RUN') return this.run(step, state, opts, this.runEnv(state, buildArgs, used));
    if (step.keyword === 'COPY' || step.keyword === 'ADD') return this.copy(step, state, done, context, scratch, opts);
    const { config, createdBy } = applyMetadata(step, state, buildArgs, used);
    await this.cached(state, opts, { instruction: [step.keyword, createdBy, runtimeConfig(config)], files: undefined }, async () =>
      this.images.buildImage({ parent: state.image, config, createdBy, layer: null }),
    );
    state.config = config;
  }

  /** Looks the step up in the cache (unless --no-cache); on a miss makes it and records it. */
  private async cached(state: StageState, opts: BuildOptions, key: { instruction: unknown; files: string | undefined }, make: () => Promise<Digest>): Promise<void> {
    const k = cacheKey({ parent: state.image, ...key });
    const hit = opts.noCache ? null : await this.cache.get(k);
    let id: Digest;
    if (hit) {
      opts.emit({ stream: ' ---> Using cache\n' });
      id = hit;
      state.config = runtimeConfig((await this.images.getImage(id)).config.config);
    } else {
      id = await make();
      await this.cache.set(k, id);
    }
    opts.emit({ stream: ` ---> ${shortId(id)}\n` });
    state.image = id;
  }

  /** RUN's environment: the image's, then the declared ARGs, then the predefined proxy args given (never kept in the image). */
  private runEnv(state: StageState, buildArgs: Record<string, string | null>, used: Set<string>): string[] {
    const env = [...(state.config.Env ?? [])];
    const names = new Set(env.map((e) => e.split('=')[0]));
    for (const [k, v] of state.args) if (!names.has(k)) env.push(`${k}=${v}`);
    for (const k of PROXY_ARGS) {
      const v = buildArgs[k];
      if (typeof v === 'string' && !names.has(k) && !state.args.has(k)) {
        env.push(`${k}=${v}`);
        used.add(k);
      }
    }
    return env;
  }

  private async run(step: Step, state: StageState, opts: BuildOptions, env: string[]): Promise<void> {
    if (!state.image) throw new InvalidParameterError(`${step.original}: a RUN step needs a base image with a shell (the stage is FROM scratch with no files)`);
    const shell = state.config.Shell?.length ? state.config.Shell : ['/bin/sh', '-c'];
    const cmd = step.json ?? [...shell, step.args];
    const argPairs = [...state.args].map(([k, v]) => `${k}=${v}`);
    const createdBy = `${argPairs.length ? `|${argPairs.length} ${argPairs.join(' ')} ` : ''}${cmd.join(' ')}`;
    const runConfig: ImageRuntimeConfig = { ...state.config };
    await this.cached(state, opts, { instruction: ['RUN', cmd, argPairs], files: undefined }, async () => {
      const containerConfig: ContainerConfig = {
        ...(runConfig as ContainerConfig),
        Image: state.image!,
        Cmd: cmd,
        Entrypoint: null,
        Env: env,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        OnBuild: null,
        Healthcheck: null,
      } as ContainerConfig;
      const { id } = await this.containers.create({
        config: containerConfig,
        hostConfig: { ...opts.runHostConfig, AutoRemove: false, ...(opts.networkMode ? { NetworkMode: opts.networkMode } : {}) },
      });
      opts.emit({ stream: ` ---> Running in ${shortId(id)}\n` });
      let ok = false;
      try {
        await this.containers.start(id);
        for await (const chunk of this.containers.output(id, opts.signal)) opts.emit({ stream: chunk.toString('utf8') });
        const r = await this.containers.wait(id, opts.signal);
        if (r.StatusCode !== 0) throw new BuildStepError(`The command '${cmd.join(' ')}' returned a non-zero code: ${r.StatusCode}`, r.StatusCode);
        const img = await this.images.commit({ containerId: id, image: state.image!, config: runConfig as ContainerConfig, createdBy });
        ok = true;
        return img;
      } finally {
        if (ok ? opts.rm !== false : opts.forceRm || opts.rm !== false) {
          opts.emit({ stream: `Removing intermediate container ${shortId(id)}\n` });
          await this.containers.remove(id);
        }
      }
    });
  }

  private async copy(step: Step, state: StageState, done: Array<{ name: string | null; image: Digest | null }>, context: SourceTree, scratch: string, opts: BuildOptions): Promise<void> {
    const add = step.keyword === 'ADD';
    const vars: Vars = new Map([...state.args, ...(state.config.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] as [string, string])]);
    const list = step.json ?? splitWords(expand(step.args, vars, state.escape), state.escape);
    if (list.length < 2) throw new InvalidParameterError(`${step.keyword} requires at least two arguments`);
    const rawDest = list[list.length - 1];
    const wd = state.config.WorkingDir || '/';
    const dest = rawDest.startsWith('/') ? rawDest : path.posix.join(wd, rawDest) + (rawDest.endsWith('/') || rawDest === '.' ? '/' : '');
    const chown = await this.chownOf(parseChownSpec(step.flags.get('chown')), state.image, scratch);
    const from = step.flags.get('from');
    const sources = list.slice(0, -1);
    if (from) {
      if (add) throw new InvalidParameterError('ADD does not support the --from flag');
      // an image ID names its content: the cache key needs no walk of the stage's files
      const image = await this.fromImage(from, done);
      const createdBy = `/bin/sh -c #(nop) COPY --from=${from} ${sources.join(' ')} in ${dest}`;
      await this.cached(state, opts, { instruction: [step.keyword, dest, 'from', image, sources, chown], files: undefined }, async () => {
        const { root, release } = await this.mountImage(image, scratch);
        try {
          const items = await collect({ tree: new FsTree(root), sources, dest, chown, add, scratch });
          return await this.images.buildImage({ parent: state.image, config: state.config, createdBy, layer: layerTar(items, chown) });
        } finally {
          await release();
        }
      });
      return;
    }
    const items = await collect({ tree: context, sources, dest, chown, add, scratch });
    const sum = await checksum(items, chown);
    const createdBy = `/bin/sh -c #(nop) ${step.keyword} ${sum.replace('sha256:', 'multi:')} in ${dest}`;
    await this.cached(state, opts, { instruction: [step.keyword, dest, null], files: sum }, async () =>
      this.images.buildImage({ parent: state.image, config: state.config, createdBy, layer: layerTar(items, chown) }),
    );
  }

  /** `--chown`'s IDs; a name is looked up in the image the step builds on (mounted only then). */
  private async chownOf(spec: ChownSpec | null, image: Digest | null, scratch: string): Promise<{ uid: number; gid: number } | null> {
    if (!chownNeedsImage(spec) || !image) return resolveChown(spec, null);
    const { root, release } = await this.mountImage(image, scratch);
    try {
      return await resolveChown(spec, new FsTree(root));
    } finally {
      await release();
    }
  }

  /** The image `--from=` names: a stage by name or index, else an image (null: a stage FROM scratch with nothing in it). */
  private async fromImage(from: string, done: Array<{ name: string | null; image: Digest | null }>): Promise<Digest | null> {
    const byName = done.find((d) => d.name === from.toLowerCase());
    if (byName) return byName.image;
    if (/^\d+$/.test(from)) {
      const byIndex = done[Number(from)];
      if (!byIndex) throw new InvalidParameterError(`invalid from flag value ${from}: refers to a current or future build stage`);
      return byIndex.image;
    }
    return this.images.imageId(from);
  }

  /** An image's root filesystem for a while, through a created (never started) container. */
  private async mountImage(image: Digest | null, scratch: string): Promise<{ root: string; release: () => Promise<void> }> {
    if (!image) {
      const empty = await fsp.mkdtemp(path.join(scratch, 'scratch-stage-'));
      return { root: empty, release: () => fsp.rm(empty, { recursive: true, force: true }) };
    }
    const { id } = await this.containers.create({ config: { Image: image, Cmd: ['/nonexistent'], Entrypoint: null } as ContainerConfig, hostConfig: { AutoRemove: false } });
    try {
      const lease = await this.containers.mountRootfs(id);
      return {
        root: lease.path,
        release: async () => {
          await lease.release();
          await this.containers.remove(id);
        },
      };
    } catch (err) {
      await this.containers.remove(id).catch(() => undefined);
      throw err;
    }
  }
}

/** The fields of an image's runtime config a build carries (those `docker commit` keeps), without empty ones: one config, one cache key. */
const RUNTIME_KEYS = ['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal', 'ArgsEscaped', 'Healthcheck', 'OnBuild', 'Shell', 'StopTimeout'] as const;
function runtimeConfig(c: ImageRuntimeConfig | undefined): ImageRuntimeConfig {
  const out: ImageRuntimeConfig = {};
  for (const k of RUNTIME_KEYS) if (c?.[k] !== undefined && c?.[k] !== null && c?.[k] !== '') (out as Record<string, unknown>)[k] = c[k];
  return out;
}

function checkPlatform(p: string | undefined, what: string): void {
  if (!p) return;
  const host = hostPlatform();
  if (p !== `${host.os}/${host.architecture}` && p !== host.os) throw new NotImplementedError(`${what}=${p}: berth builds for ${host.os}/${host.architecture} only`);
}

