/**
 * The composition root: berthd's built-in plugins, as one explicit array (no registration by
 * import side effect). The default runtime backend is one of them — the OCI runtime plugin,
 * serving runc plus the runtimes of --add-runtime / daemon.json — so a plugin may
 * `requires: ['io.berth.runtime.v1']`. A custom build appends its own plugins (another
 * backend among them) through startBerthd().
 */
import type { Plugin } from '@berth/core';
import { imageStorePlugin } from '@berth/image-store';
import { networkBasicPlugin } from '@berth/plugin-network-basic';
import { apparmorPlugin } from '@berth/plugin-apparmor';
import { seccompPlugin } from '@berth/plugin-seccomp';
import { idFilesFromEnv, usernsPlugin } from '@berth/plugin-userns';
import { buildRuntimes, findExecutable, ociRuntimePlugin } from '@berth/runtime-oci';
import type { DaemonConfig } from './config.js';

/** `subreaper`: the OCI backend makes this process a child subreaper (berthd's own process only). */
export function builtins(config: DaemonConfig, opts: { subreaper?: boolean } = {}): Plugin[] {
  const extra: Record<string, { path: string; runtimeArgs?: string[] }> = {};
  for (const [name, r] of Object.entries(config.runtimes)) if (name !== 'runc') extra[name] = r;
  // The daemon's --default-runtime is the engine's (any backend's runtime); this backend's own default stays runc.
  const { runtimes, defaultRuntime } = buildRuntimes({
    daemonJson: extra,
    runcPath: findExecutable(config.runtimes.runc?.path ?? 'runc') ?? config.runtimes.runc?.path ?? 'runc',
  });
  const runtime = ociRuntimePlugin({ execRoot: config.execRoot, runtimes, defaultRuntime, subreaper: opts.subreaper ?? false });
  // --userns-remap (without it the userns plugin skips itself); BERTH_USERNS_* env: other files than /etc's (tests).
  const userns = usernsPlugin({ config: { ...(config.usernsRemap !== undefined ? { remap: config.usernsRemap } : {}), files: idFilesFromEnv(process.env) } });
  return [runtime, imageStorePlugin(), networkBasicPlugin(), seccompPlugin(), apparmorPlugin(), userns];
}
