/**
 * The OCI hooks plugin: at each container start (specBuild, Stage.OCI_HOOKS, after everything
 * else that shapes the spec) it reads the hooks.d directories (hooks-dir.ts) and adds the hooks
 * whose `when` matches this container to its spec's `hooks`, for the runtime to run. Reading at
 * each start, as Podman's monitor would, picks up new, changed and removed files without a
 * restart. A file that cannot be used is skipped with a warning naming it and why (once per
 * version of the file, not at every start).
 *
 * Config (daemon.json `"plugins": {"config": {"oci-hooks": {"dirs": […]}}}`): `dirs`, the
 * hooks.d directories in increasing precedence (default Podman's and CRI-O's:
 * /usr/share/containers/oci/hooks.d, then /etc/containers/oci/hooks.d).
 */
import { stat } from 'node:fs/promises';
import { PluginConfigError, Stage, definePlugin, type ContainerRecord, type DeepReadonly, type Plugin } from '@berth/core';
import { DEFAULT_HOOKS_DIRS, readHooksDirs, withMatchingHooks, type HookFileProblem } from './hooks-dir.js';

export const PLUGIN_NAME = 'oci-hooks';
const PLUGIN_TYPE = 'io.berth.oci-hooks.v1';

export interface OciHooksConfig {
  /** hooks.d directories, in increasing precedence (a file masks the same name in an earlier one). */
  dirs?: string[];
}

/** Whether the container has bind mounts from the host (when.hasBindMounts). */
export function hasBindMounts(c: DeepReadonly<ContainerRecord>): boolean {
  return (c.Mounts ?? []).some((m) => m.Type === 'bind');
}

export function ociHooksPlugin(opts: { config?: OciHooksConfig } = {}): Plugin<OciHooksConfig> {
  return definePlugin<OciHooksConfig>({
    name: PLUGIN_NAME,
    type: PLUGIN_TYPE,
    config: { ...(opts.config ?? {}) },
    validateConfig(config) {
      const dirs = config.dirs;
      if (dirs === undefined) return;
      if (!Array.isArray(dirs) || dirs.some((d) => typeof d !== 'string' || !d.startsWith('/'))) {
        throw new PluginConfigError('dirs', 'must be a list of absolute directory paths');
      }
    },
    apply(hooks, ctx) {
      const dirs = ctx.config.dirs ?? [...DEFAULT_HOOKS_DIRS];
      // Problems already reported, by file and the file's version (size and mtime).
      const reported = new Set<string>();
      const report = async (p: HookFileProblem): Promise<void> => {
        const st = await stat(p.file).catch(() => null);
        const key = `${p.file}\0${st ? `${st.size}:${st.mtimeMs}` : 'gone'}\0${p.reason}`;
        if (reported.has(key)) return;
        reported.add(key);
        ctx.logger.warn(`OCI hook file ${p.file} skipped: ${p.reason}`, { file: p.file, reason: p.reason });
      };
      hooks.specBuild.tapPromise({ name: PLUGIN_NAME, stage: Stage.OCI_HOOKS }, async (spec, start) => {
        const { hooks: defs, problems } = await readHooksDirs(dirs);
        for (const p of problems) await report(p);
        const { spec: next, added } = withMatchingHooks({ spec, hasBindMounts: hasBindMounts(start.container) }, defs);
        if (added.length) ctx.logger.debug('OCI hooks added', { container: start.container.ID, files: added.map((d) => d.file).join(', ') });
        return next;
      });
    },
  });
}
