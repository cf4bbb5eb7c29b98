/**
 * The Dockerfile as steps: parsed by the `dockerfile-ast` package (its lexer handles line
 * continuations, the `# escape=` directive, comments), mapped to berth's own Step shape.
 * Unknown instructions and malformed ones are refused here, before anything runs, with the
 * line they are on (a 400, as dockerd's parser errors).
 */
import { DockerfileParser, type Instruction, type ModifiableInstruction } from 'dockerfile-ast';
import { InvalidParameterError } from '@berth/core';
import { jsonArray } from '@berth/image-store';

export const SUPPORTED = new Set([
  'FROM', 'RUN', 'CMD', 'LABEL', 'MAINTAINER', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME',
  'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL',
]);

export interface Step {
  /** Upper case keyword (FROM, RUN…). */
  keyword: string;
  /** The arguments as written, continuations joined, flags left out. */
  args: string;
  /** `--name=value` flags before the arguments. */
  flags: Map<string, string | null>;
  /** The JSON (exec) form's strings, when the arguments are a JSON array. */
  json: string[] | null;
  /** 1-based line in the Dockerfile. */
  line: number;
  /** `KEYWORD args` as the progress stream prints it. */
  original: string;
}

export class DockerfileSyntaxError extends InvalidParameterError {}

/** Splits `--flag=value` words off the front of `args` (for instructions the parser gives no flags for). */
function leadingFlags(args: string): { flags: Map<string, string | null>; rest: string } {
  const flags = new Map<string, string | null>();
  let rest = args.trimStart();
  for (;;) {
    const m = /^--([A-Za-z][\w-]*)(?:=(\S*))?(?:\s+|$)/.exec(rest);
    if (!m) break;
    flags.set(m[1], m[2] ?? null);
    rest = rest.slice(m[0].length);
  }
  return { flags, rest };
}

export function toStep(ins: Instruction, line: number): Step {
  const keyword = ins.getKeyword().toUpperCase();
  if (!SUPPORTED.has(keyword)) throw new DockerfileSyntaxError(`Dockerfile parse error line ${line}: unknown instruction: ${keyword}`);
  const content = ins.getArgumentsContent() ?? '';
  // FROM, RUN, COPY, ADD, HEALTHCHECK: the parser gives the flags apart and leaves them out of
  // the content; ONBUILD keeps its trigger's text as it is
  const modifiable = ins as Partial<ModifiableInstruction>;
  const { flags, rest } =
    keyword === 'ONBUILD'
      ? { flags: new Map<string, string | null>(), rest: content.trim() }
      : typeof modifiable.getFlags === 'function'
        ? { flags: new Map(modifiable.getFlags.call(ins).map((f) => [f.getName(), f.getValue()] as [string, string | null])), rest: content }
        : leadingFlags(content);
  const args = rest.trim();
  if (!args && keyword !== 'RUN') throw new DockerfileSyntaxError(`Dockerfile parse error line ${line}: ${keyword} requires at least one argument`);
  const original = `${keyword} ${[...[...flags].map(([k, v]) => (v === null ? `--${k}` : `--${k}=${v}`)), args].join(' ')}`.trim();
  return { keyword, args, flags, json: jsonArray(args), line, original };
}

export interface ParsedDockerfile {
  /** Instructions before the first FROM (ARG only). */
  preamble: Step[];
  steps: Step[];
  /** The escape character (`# escape=` directive, default backslash). */
  escape: string;
}

export function parseDockerfile(text: string): ParsedDockerfile {
  const df = DockerfileParser.parse(text);
  const all = df.getInstructions().map((i) => toStep(i, i.getRange().start.line + 1));
  const first = all.findIndex((s) => s.keyword === 'FROM');
  if (first < 0) throw new DockerfileSyntaxError(all.length ? 'Dockerfile parse error: no FROM instruction' : 'the Dockerfile (Dockerfile) cannot be empty');
  const preamble = all.slice(0, first);
  const bad = preamble.find((s) => s.keyword !== 'ARG');
  if (bad) throw new DockerfileSyntaxError(`Dockerfile parse error line ${bad.line}: ${bad.keyword} before the first FROM (only ARG may come before it)`);
  return { preamble, steps: all.slice(first), escape: df.getEscapeCharacter() };
}

/** One ONBUILD trigger (an instruction's text) as a step. */
export function parseTrigger(text: string): Step {
  const df = DockerfileParser.parse(text);
  const ins = df.getInstructions();
  if (ins.length !== 1) throw new DockerfileSyntaxError(`invalid ONBUILD trigger: ${text}`);
  const step = toStep(ins[0], 0);
  if (['ONBUILD', 'FROM', 'MAINTAINER'].includes(step.keyword)) throw new DockerfileSyntaxError(`${step.keyword} isn't allowed as an ONBUILD trigger`);
  return step;
}
