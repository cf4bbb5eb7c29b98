/** The Dockerfile → steps mapping: flags apart, continuations, `# escape=`, JSON forms, the 400s with the line. */
import { describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import { parseDockerfile, parseTrigger } from '../src/parse.js';

describe('parseDockerfile', () => {
  it('maps instructions with their flags, lines and the text the progress stream prints', () => {
    const p = parseDockerfile(`ARG BASE=busybox
# a comment
FROM --platform=linux/amd64 \${BASE} AS a
COPY --from=a --chown=1:2 x /y
RUN echo hi \\
  && echo there
HEALTHCHECK --interval=5s --retries=3 CMD true
CMD ["sh", "-c", "echo"]
`);
    expect(p.preamble.map((s) => s.original)).toEqual(['ARG BASE=busybox']);
    expect(p.steps.map((s) => [s.line, s.original])).toEqual([
      [3, 'FROM --platform=linux/amd64 ${BASE} AS a'],
      [4, 'COPY --from=a --chown=1:2 x /y'],
      [5, 'RUN echo hi   && echo there'],
      [7, 'HEALTHCHECK --interval=5s --retries=3 CMD true'],
      [8, 'CMD ["sh", "-c", "echo"]'],
    ]);
    expect([...p.steps[1].flags]).toEqual([['from', 'a'], ['chown', '1:2']]);
    expect(p.steps[1].args).toBe('x /y');
    expect(p.steps[2].json).toBeNull();
    expect(p.steps[4].json).toEqual(['sh', '-c', 'echo']);
    expect(p.escape).toBe('\\');
  });

  it('honours the escape directive', () => {
    const p = parseDockerfile('# escape=`\nFROM busybox\nRUN echo a `\n  b\nCOPY C:\\dir\\ /x\n');
    expect(p.escape).toBe('`');
    expect(p.steps[1].args).toBe('echo a   b');
    expect(p.steps[2].args).toBe('C:\\dir\\ /x');
  });

  it('refuses an unknown instruction with its line (400)', () => {
    let err: unknown;
    try {
      parseDockerfile('FROM busybox\nRUN true\nFROOB x\n');
    } catch (e) {
      err = e;
    }
    expect(errorKind(err)).toBe('InvalidParameter');
    expect((err as Error).message).toBe('Dockerfile parse error line 3: unknown instruction: FROOB');
  });

  it('refuses a file without FROM, an instruction before FROM other than ARG, an empty file', () => {
    expect(() => parseDockerfile('RUN true\n')).toThrow(/no FROM/);
    expect(() => parseDockerfile('ENV A=1\nFROM busybox\n')).toThrow(/line 1: ENV before the first FROM/);
    expect(() => parseDockerfile('# only a comment\n')).toThrow(/cannot be empty/);
    expect(() => parseDockerfile('FROM busybox\nCOPY\n')).toThrow(/line 2: COPY requires at least one argument/);
  });

  it('parses ONBUILD triggers and refuses the ones dockerd refuses', () => {
    const t = parseTrigger('RUN echo x > /y');
    expect([t.keyword, t.args]).toEqual(['RUN', 'echo x > /y']);
    expect(() => parseTrigger('FROM busybox')).toThrow(/FROM isn't allowed as an ONBUILD trigger/);
  });
});
