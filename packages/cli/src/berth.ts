/**
 * The `berth` command line (commander): `berth plugins`, `berth explain CONTAINER` (read from
 * a running berthd's /berth/v1 API) and `berth build --config FILE --out DIR` (a custom
 * daemon bundle, build.ts). `main(argv, io)` returns the exit code: 0 done, 1 the daemon or
 * the build refused, 125 a bad command line (as berthd and docker).
 */
import { Command, CommanderError, Option } from 'commander';
import type { ContainerExplain, PluginInfo } from '@berth/core';
import { ENGINE_VERSION } from '@berth/daemon';
import { buildDaemon } from './build.js';
import { CliError, daemonHost, getJson, parseHost } from './client.js';
import { explainTree, pluginTable } from './format.js';

export interface CliIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  env: NodeJS.ProcessEnv;
  cwd: string;
}

const processIo = (): CliIo => ({ stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() });

function formatOption(): Option {
  return new Option('--format <format>', 'output format').choices(['table', 'json']).default('table');
}

function program(io: CliIo): Command {
  const endpoint = (cmd: Command) => parseHost(daemonHost(cmd.optsWithGlobals<{ host?: string }>().host, io.env));
  const root = new Command('berth')
    .description("berth's own tools: the plugins of a running berthd, what they did to a container, custom daemon builds")
    .version(`berth version ${ENGINE_VERSION}`, '-v, --version')
    .option('-H, --host <host>', 'daemon socket to connect to (default: $DOCKER_HOST, else unix:///run/berth/berth.sock)')
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride()
    .showHelpAfterError("See 'berth --help'.");

  root
    .command('plugins')
    .description('list the plugins of the daemon: type, version, status (a skipped one with its reason), the hooks each taps, its config (secrets redacted)')
    .addOption(formatOption())
    .option('--no-trunc', "don't truncate output")
    .action(async (o: { format: string; trunc: boolean }, cmd: Command) => {
      const plugins = await getJson<PluginInfo[]>(endpoint(cmd), '/berth/v1/plugins');
      io.stdout.write(o.format === 'json' ? JSON.stringify(plugins, null, 2) + '\n' : pluginTable(plugins, { trunc: o.trunc }));
    });

  root
    .command('explain')
    .description("what the container's last start did: each hook's taps in order with their durations and whether their selector skipped them, the spec paths each plugin set, the undo steps of a failed start")
    .argument('<container>', 'container name or ID')
    .addOption(formatOption())
    .action(async (container: string, o: { format: string }, cmd: Command) => {
      const e = await getJson<ContainerExplain>(endpoint(cmd), `/berth/v1/containers/${encodeURIComponent(container)}/explain`);
      io.stdout.write(o.format === 'json' ? JSON.stringify(e, null, 2) + '\n' : explainTree(e));
    });

  root
    .command('build')
    .description('bundle a custom daemon with only the plugins of a build file (daemon.json with a "plugins" section); run it with `node DIR/berthd.mjs`')
    .requiredOption('--config <file>', 'the build file')
    .requiredOption('--out <dir>', 'the output directory')
    .action(async (o: { config: string; out: string }) => {
      const r = await buildDaemon({ config: o.config, out: o.out, cwd: io.cwd });
      io.stdout.write(`built ${r.entry}\n`);
      io.stdout.write(`  built-ins: ${r.builtins.included.join(', ') || '-'}${r.builtins.leftOut.length ? ` (left out: ${r.builtins.leftOut.join(', ')})` : ''}\n`);
      if (r.plugins.length) io.stdout.write(`  plugins: ${r.plugins.join(', ')}\n`);
      io.stdout.write(`run it: node ${r.entry} [berthd flags]\n`);
    });
  return root;
}

export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  try {
    await program(io).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with 0; a bad command line has been reported by commander.
      return err.exitCode === 0 ? 0 : 125;
    }
    if (err instanceof CliError) {
      io.stderr.write(`berth: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
