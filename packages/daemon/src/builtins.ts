/**
 * The composition root: the built-in runtime backend and the explicit array of built-in
 * plugins (no registration by import side effect). A custom build passes its own list to
 * startBerthd().
 */
import type { Logger, Plugin, RuntimeBackend } from '@berth/core';
import { imageStorePlugin } from '@berth/image-store';
import { networkBasicPlugin } from '@berth/plugin-network-basic';
import { OciRuntimeBackend, buildRuntimes, findExecutable } from '@berth/runtime-oci';
import type { DaemonConfig } from './config.js';

export interface Builtins {
  runtime: RuntimeBackend;
  plugins: Plugin[];
  runtimes: Record<string, { path: string; runtimeArgs?: string[] }>;
  defaultRuntime: string;
}

export function builtins(config: DaemonConfig, logger: Logger): Builtins {
  const extra: Record<string, { path: string; runtimeArgs?: string[] }> = {};
  for (const [name, r] of Object.entries(config.runtimes)) if (name !== 'runc') extra[name] = r;
  const { runtimes, defaultRuntime } = buildRuntimes({
    daemonJson: extra,
    defaultRuntime: config.defaultRuntime,
    runcPath: findExecutable(config.runtimes.runc?.path ?? 'runc') ?? config.runtimes.runc?.path ?? 'runc',
  });
  const runtime = new OciRuntimeBackend({
    execRoot: config.execRoot,
    runtimes,
    defaultRuntime,
    warn: (msg, err) => logger.warn(msg, err ? { error: err instanceof Error ? err.message : String(err) } : undefined),
  });
  const plugins: Plugin[] = [imageStorePlugin(), networkBasicPlugin()];
  return { runtime, plugins, runtimes, defaultRuntime };
}
