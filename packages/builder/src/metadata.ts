/**
 * The instructions that change only the image config: ENV, LABEL, EXPOSE, VOLUME, USER,
 * WORKDIR, STOPSIGNAL (through image-store's applyChanges, the parser `docker commit
 * --change` uses), CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD, ARG, MAINTAINER.
 * Variables are substituted first where dockerd substitutes them.
 */
import { InvalidParameterError, type HealthConfig } from '@berth/core';
import { applyChanges, jsonArray, splitWords, type Digest, type ImageRuntimeConfig } from '@berth/image-store';
import { expand, type Vars } from './expand.js';
import type { Step } from './parse.js';

/** Build args every Dockerfile may use without declaring them (not kept in the image's history). */
export const PROXY_ARGS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'];

export interface StageState {
  image: Digest | null;
  config: ImageRuntimeConfig;
  /** Declared ARGs of the stage with their values. */
  args: Vars;
  /** The meta ARGs (before the first FROM): an `ARG NAME` without a default takes its value. */
  meta: Vars;
  /** CMD set in this stage (an ENTRYPOINT then keeps it). */
  cmdSet: boolean;
  escape: string;
}

/** The variables a step's words are substituted with: ARGs, then ENV over them. */
export function stageVars(state: StageState): Vars {
  const v: Vars = new Map(state.args);
  for (const e of state.config.Env ?? []) {
    const i = e.indexOf('=');
    v.set(i < 0 ? e : e.slice(0, i), i < 0 ? '' : e.slice(i + 1));
  }
  return v;
}

/** ARG name[=default]…: the values they take (`--build-arg` first, then the default, then a meta ARG of that name). */
export function declareArg(step: Step, scope: Vars, buildArgs: Record<string, string | null>, used: Set<string>, meta?: Vars): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const w of splitWords(expand(step.args, scope))) {
    const i = w.indexOf('=');
    const name = i < 0 ? w : w.slice(0, i);
    if (!name) throw new InvalidParameterError(`ARG names can not be blank`);
    const def = i < 0 ? undefined : w.slice(i + 1);
    const given = buildArgs[name];
    if (given !== undefined) used.add(name);
    const value = given ?? def ?? meta?.get(name);
    if (value !== undefined && value !== null) out.push([name, value]);
  }
  return out;
}

const DURATION = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
const UNIT: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** A Go duration ("30s", "1m30s", "500ms") in nanoseconds. */
export function parseDuration(flag: string, v: string): number {
  if (v === '0') return 0;
  if (!/^((\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h))+$/.test(v)) throw new InvalidParameterError(`invalid duration for --${flag}: ${v}`);
  let ns = 0;
  for (const m of v.matchAll(DURATION)) ns += Number(m[1]) * UNIT[m[2]];
  return Math.round(ns);
}

function healthcheck(step: Step, shell: string[]): HealthConfig {
  const w = step.args.trim();
  if (/^NONE$/i.test(w)) return { Test: ['NONE'] };
  const m = /^CMD\s+(.*)$/is.exec(w);
  if (!m) throw new InvalidParameterError(`Dockerfile parse error line ${step.line}: HEALTHCHECK requires CMD or NONE`);
  const json = jsonArray(m[1]);
  const hc: HealthConfig = { Test: json ? ['CMD', ...json] : ['CMD-SHELL', m[1]] };
  void shell;
  const flags: Record<string, keyof HealthConfig> = { interval: 'Interval', timeout: 'Timeout', 'start-period': 'StartPeriod', 'start-interval': 'StartInterval' };
  for (const [k, v] of step.flags) {
    if (k === 'retries') {
      if (!v || !/^\d+$/.test(v)) throw new InvalidParameterError(`invalid --retries value: ${v}`);
      hc.Retries = Number(v);
    } else if (flags[k]) (hc as Record<string, unknown>)[flags[k]] = parseDuration(k, v ?? '');
    else throw new InvalidParameterError(`Unknown flag: ${k}`);
  }
  return hc;
}

/** The config after a metadata step and the history's created_by for it. */
export function applyMetadata(step: Step, state: StageState, buildArgs: Record<string, string | null>, used: Set<string>): { config: ImageRuntimeConfig; createdBy: string } {
  let config: ImageRuntimeConfig = { ...state.config };
  const vars = stageVars(state);
  const x = (s: string) => expand(s, vars, state.escape);
  const shell = config.Shell?.length ? config.Shell : ['/bin/sh', '-c'];
  let text = step.original;
  switch (step.keyword) {
    case 'ENV':
    case 'LABEL': {
      // substitution per word keeps the quotes for applyChanges' own word splitting
      const expanded = x(step.args);
      config = applyChanges(config, [`${step.keyword} ${expanded}`]);
      text = `${step.keyword} ${expanded}`;
      break;
    }
    case 'EXPOSE':
    case 'VOLUME':
    case 'USER':
    case 'WORKDIR':
    case 'STOPSIGNAL': {
      const expanded = step.keyword === 'VOLUME' && step.json ? JSON.stringify(step.json.map(x)) : x(step.args);
      config = applyChanges(config, [`${step.keyword} ${expanded}`]);
      text = `${step.keyword} ${expanded}`;
      break;
    }
    case 'CMD':
      config.Cmd = step.json ?? [...shell, step.args];
      state.cmdSet = true;
      break;
    case 'ENTRYPOINT':
      config.Entrypoint = step.json ?? [...shell, step.args];
      if (!state.cmdSet) config.Cmd = null;
      break;
    case 'SHELL':
      if (!step.json || step.json.length === 0) throw new InvalidParameterError('SHELL requires the arguments to be in JSON form');
      config.Shell = step.json;
      break;
    case 'HEALTHCHECK':
      config.Healthcheck = healthcheck(step, shell);
      break;
    case 'ONBUILD': {
      const m = /^(\S+)(.*)$/s.exec(step.args.trim())!;
      const kw = m[1].toUpperCase();
      if (['ONBUILD', 'FROM', 'MAINTAINER'].includes(kw)) throw new InvalidParameterError(`${kw} isn't allowed as an ONBUILD trigger`);
      config.OnBuild = [...(config.OnBuild ?? []), `${kw}${m[2]}`];
      break;
    }
    case 'ARG':
      for (const [k, v] of declareArg(step, vars, buildArgs, used, state.meta)) state.args.set(k, v);
      break;
    case 'MAINTAINER':
      break;
    default:
      throw new InvalidParameterError(`unknown instruction: ${step.keyword}`);
  }
  return { config, createdBy: `/bin/sh -c #(nop) ${text.replace(/^(\S+) /, '$1 ')}` };
}
