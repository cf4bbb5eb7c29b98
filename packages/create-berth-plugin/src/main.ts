/**
 * The `create-berth-plugin` command: `create-berth-plugin NAME [--dir DIR] [--tarballs DIR]`
 * (what `pnpm create berth-plugin NAME` runs). Returns the exit code; prints the next steps.
 */
import { parseArgs } from 'node:util';
import { relative } from 'node:path';
import { CreatePluginError, createPlugin } from './index.js';

const USAGE = `Usage: create-berth-plugin NAME [--dir DIR] [--tarballs DIR]

Writes a berth plugin package named NAME (an npm package name) into DIR (default ./NAME
without its scope): an example plugin, a harness test, tsconfig, vitest config, README.

  --dir DIR        where to write it (must not exist, or be empty)
  --tarballs DIR   take berth's packages from the tarballs \`pnpm pack\` wrote into DIR
                   (a berth checkout before its packages are published)
  -h, --help       this text
`;

export async function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s), err: (s: string) => void = (s) => process.stderr.write(s)): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { dir: { type: 'string' }, tarballs: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (e) {
    err(`create-berth-plugin: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    out(USAGE);
    return 0;
  }
  if (parsed.positionals.length !== 1) {
    err(`create-berth-plugin: want one NAME\n\n${USAGE}`);
    return 2;
  }
  try {
    const made = await createPlugin({ name: parsed.positionals[0]!, dir: parsed.values.dir, tarballs: parsed.values.tarballs });
    const where = relative(process.cwd(), made.dir) || '.';
    out(`Wrote ${made.files.length} files into ${made.dir}. Next:\n\n  cd ${where}\n  pnpm install\n  pnpm test\n  pnpm build\n\nREADME.md says how to load it into berthd.\n`);
    return 0;
  } catch (e) {
    if (!(e instanceof CreatePluginError)) throw e;
    err(`create-berth-plugin: ${e.message}\n`);
    return 1;
  }
}
