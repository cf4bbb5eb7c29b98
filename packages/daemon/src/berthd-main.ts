/**
 * berthdMain(): the berthd executable as a function, for berthd's own bin and for custom
 * builds. It parses dockerd-style flags (plus the build's own) and daemon.json (with its
 * `plugins` section), installs the last guard (last-guard.ts) and the idle collector (idle-gc.ts:
 * memory grown by a burst is given back once the daemon is idle), and runs the daemon with
 * berthd's lock, pidfile, sockets and signal handling: SIGTERM/SIGINT shut it down
 * gracefully and exit the process with 0. Resolves with an exit code only when it does not
 * start (--help/--version 0, a bad command line 125, a failed start 1).
 */
import { ConsoleLogger, errorMessage, type Plugin } from '@berth/core';
import { installIdleCollector } from './idle-gc.js';
import { installLastGuard } from './last-guard.js';
import { startBerthd } from './main.js';
import { UsageError, parseBerthdArgs, usage, type BuildFlags } from './options.js';
import { ENGINE_VERSION } from './version.js';

export interface BerthdMainOptions {
  /** The build's own plugins, after the built-ins and daemon.json's `plugins.load`. */
  plugins?: Plugin[];
  /** The build's own flags, each setting one key of one plugin's config (shown in --help). */
  flags?: BuildFlags;
}

/** What berthd prints when the daemon does not start (docs/composing.md quotes it). */
export function failedToStart(err: unknown): string {
  return `berthd: failed to start daemon: ${errorMessage(err)}\n`;
}

export async function berthdMain(argv: string[], opts: BerthdMainOptions = {}): Promise<number> {
  let parsed;
  try {
    parsed = parseBerthdArgs(argv, undefined, opts.flags);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`berthd: ${err.message}\nSee 'berthd --help'.\n`);
      return 125;
    }
    throw err;
  }
  if (parsed.help) {
    process.stdout.write(usage(opts.flags));
    return 0;
  }
  if (parsed.version) {
    process.stdout.write(`berthd version ${ENGINE_VERSION}\n`);
    return 0;
  }
  const minApi = process.env.DOCKER_MIN_API_VERSION;
  if (minApi) process.stderr.write('berthd: DOCKER_MIN_API_VERSION is not supported; the minimum API version is 1.24\n');
  const level = parsed.config.logLevel;
  const logger = new ConsoleLogger(level === 'fatal' ? 'error' : level);
  installLastGuard({ logger });
  installIdleCollector({ logger });
  try {
    await startBerthd(parsed.config, { plugins: opts.plugins, handleSignals: true, subreaper: true, logger });
  } catch (err) {
    process.stderr.write(failedToStart(err));
    return 1;
  }
  // Runs until SIGTERM/SIGINT (startBerthd's handlers exit the process).
  return new Promise<number>(() => {});
}
