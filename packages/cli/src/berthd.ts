/**
 * berthd: parse dockerd-style flags and daemon.json, install the last guard (what an uncaught
 * exception or unhandled rejection does: last-guard.ts in @berth/daemon), then run the daemon
 * until a signal.
 */
import 'reflect-metadata';
import { ConsoleLogger, errorMessage } from '@berth/core';
import { ENGINE_VERSION, installLastGuard, startBerthd } from '@berth/daemon';
import { USAGE, UsageError, parseBerthdArgs } from './options.js';

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseBerthdArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`berthd: ${err.message}\nSee 'berthd --help'.\n`);
      return 125;
    }
    throw err;
  }
  if (parsed.help) {
    process.stdout.write(USAGE);
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
  try {
    await startBerthd(parsed.config, { handleSignals: true, subreaper: true, logger });
  } catch (err) {
    process.stderr.write(`berthd: failed to start daemon: ${errorMessage(err)}\n`);
    return 1;
  }
  // Runs until SIGTERM/SIGINT (startBerthd's handlers exit the process).
  return new Promise<number>(() => {});
}
