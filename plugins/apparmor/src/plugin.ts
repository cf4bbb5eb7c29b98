/**
 * The AppArmor plugin, as dockerd's saveAppArmorConfig + WithApparmor:
 *  - at engine start on a host with AppArmor enabled (`/sys/module/apparmor/parameters/enabled`
 *    = Y, IHost's probe) it writes the `berth-default` profile (profile.ts) to
 *    `<exec-root>/apparmor/berth-default` and loads it with `apparmor_parser -Kr`, once (a
 *    failed load is logged and retried at the next start that needs it, which fails if it
 *    fails again);
 *  - specBuild (Stage.SECURITY): `process.apparmorProfile` = `--security-opt apparmor=NAME`
 *    (which must be loaded already: else the start fails with a clear 400 and is rolled back),
 *    else `unconfined` for --privileged, else berth-default; `apparmor=unconfined` and
 *    --privileged leave the process unconfined. The container's `AppArmorProfile` (inspect)
 *    says which, as dockerd's does.
 * On a host without AppArmor it skips itself (SkipPluginError with the reason): it announces
 * no `name=apparmor` for /info, and the core refuses `apparmor=NAME` at create.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IHost, InvalidParameterError, PluginConfigError, SkipPluginError, Stage, definePlugin, parseSecurityOpts, type ContainerRecord, type Plugin } from '@berth/core';
import { SystemAppArmor, type AppArmorHost, type SystemAppArmorOptions } from './host.js';
import { DEFAULT_PROFILE_NAME, generateProfile } from './profile.js';

const PLUGIN_NAME = 'apparmor';
const PLUGIN_TYPE = 'io.berth.security.v1';
export const UNCONFINED = 'unconfined';

export type AppArmorConfig = SystemAppArmorOptions;

/** The profile a container runs under: its apparmor= option, else unconfined when privileged, else berth-default. */
export function profileFor(c: ContainerRecord): string {
  const opt = parseSecurityOpts(c.HostConfig?.SecurityOpt).apparmor;
  if (opt) return opt;
  return c.HostConfig?.Privileged === true ? UNCONFINED : DEFAULT_PROFILE_NAME;
}

export function apparmorPlugin(opts: { config?: AppArmorConfig; host?: AppArmorHost } = {}): Plugin<AppArmorConfig> {
  return definePlugin<AppArmorConfig>({
    name: PLUGIN_NAME,
    type: PLUGIN_TYPE,
    config: { ...(opts.config ?? {}) },
    validateConfig(config) {
      for (const k of ['parser', 'profilesFile', 'configDir'] as const) {
        const v = config[k];
        if (v !== undefined && (typeof v !== 'string' || !v)) throw new PluginConfigError(k, 'must be a non-empty string');
      }
    },
    async apply(hooks, ctx) {
      const features = await ctx.container.resolve(IHost).features();
      if (!features.apparmor) throw new SkipPluginError('AppArmor is not enabled on this host (/sys/module/apparmor/parameters/enabled is not Y)');
      const aa = opts.host ?? new SystemAppArmor(ctx.config);
      const text = generateProfile({
        daemonProfile: await aa.daemonProfile(),
        tunables: await aa.hasInclude('tunables/global'),
        abstractionsBase: await aa.hasInclude('abstractions/base'),
      });
      const dir = join(ctx.engine.execRoot, 'apparmor');
      const file = join(dir, DEFAULT_PROFILE_NAME);
      let loading: Promise<void> | undefined;
      const ensureDefault = (): Promise<void> => {
        loading ??= (async () => {
          await mkdir(dir, { recursive: true, mode: 0o700 });
          await writeFile(file, text, { mode: 0o600 });
          await aa.load(file);
        })().catch((err: unknown) => {
          loading = undefined; // the next start that needs it tries again
          throw err;
        });
        return loading;
      };
      await ensureDefault().catch((err: unknown) => {
        ctx.logger.error(`AppArmor is enabled but the ${DEFAULT_PROFILE_NAME} profile could not be loaded`, { error: err instanceof Error ? err.message : String(err) });
      });
      ctx.addSecurityOption('name=apparmor');

      hooks.beforeCreate.tapPromise({ name: PLUGIN_NAME, stage: Stage.SECURITY }, async (c) => {
        const name = profileFor(c.container);
        // a profile may be named by a path (/usr/bin/foo); never empty, no blanks or control characters
        if (!name || [...name].some((ch) => ch <= ' ' || ch === '\x7f')) throw new InvalidParameterError(`invalid --security-opt apparmor=${JSON.stringify(name)}: not an AppArmor profile name`);
      });

      hooks.specBuild.tapPromise({ name: PLUGIN_NAME, stage: Stage.SECURITY }, async (spec, c) => {
        const profile = profileFor(c.container);
        c.container.AppArmorProfile = profile;
        if (profile === UNCONFINED) return spec;
        if (profile === DEFAULT_PROFILE_NAME) {
          await ensureDefault();
        } else if (!(await aa.loadedProfiles()).has(profile)) {
          throw new InvalidParameterError(`AppArmor profile ${JSON.stringify(profile)} (--security-opt apparmor=${profile}) is not loaded in the kernel: load it with apparmor_parser first`);
        }
        return { ...spec, process: { ...spec.process!, apparmorProfile: profile } };
      });
    },
  });
}
