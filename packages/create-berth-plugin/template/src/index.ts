/**
 * berth-plugin-example: a berth plugin that adds one environment variable to every container
 * it starts (a specBuild tap). Its config says which variable and which value; the plugin
 * checks it in `validateConfig`, so a bad build file is refused at berthd's start naming the
 * plugin and the key.
 */
import { PluginConfigError, Stage, definePlugin, inject, injectable, type InjectionToken, type OciSpec } from '@berth/core';

/** The plugin's name: its key in a build file's plugin config, in `berth plugins` and in provenance. */
export const PLUGIN_NAME = 'berth-plugin-example';

export interface ExampleConfig {
  /** The variable's name (letters, digits and `_`, not starting with a digit). */
  variable: string;
  /** Its value. */
  value: string;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Check a config: a PluginConfigError names the key (berthd refuses to start, naming the plugin and the key). */
export function validateExampleConfig(config: ExampleConfig): void {
  if (typeof config.variable !== 'string' || !ENV_NAME.test(config.variable)) {
    throw new PluginConfigError('variable', `want an environment variable name, got ${JSON.stringify(config.variable)}`);
  }
  if (typeof config.value !== 'string') {
    throw new PluginConfigError('value', `want a string, got ${JSON.stringify(config.value)}`);
  }
}

const CONFIG: InjectionToken<ExampleConfig> = Symbol(`${PLUGIN_NAME}:config`);

/**
 * Adds the variable to a spec. A class resolved through berth's DI container, to show the
 * decorators: `@injectable()` and `@inject(TOKEN)` on every constructor parameter, both
 * imported from '@berth/core' (never from 'tsyringe': a second copy would not know berth's
 * container).
 */
@injectable()
export class Greeter {
  constructor(@inject(CONFIG) private readonly config: ExampleConfig) {}

  /** The spec with the variable added, unless the container sets it itself. */
  apply(spec: OciSpec): OciSpec {
    const env = spec.process?.env ?? [];
    if (env.some((e) => e.startsWith(`${this.config.variable}=`))) return spec;
    return { ...spec, process: { ...spec.process!, env: [...env, `${this.config.variable}=${this.config.value}`] } };
  }
}

export function examplePlugin() {
  return definePlugin<ExampleConfig>({
    name: PLUGIN_NAME,
    type: 'io.berth.example.v1',
    config: { variable: 'GREETING', value: `hello from ${PLUGIN_NAME}` },
    validateConfig: validateExampleConfig,
    // Nothing it registers reaches the engine's container: the Greeter is the plugin's own.
    provides: [],
    register(container, ctx) {
      container.register(CONFIG, { useValue: ctx.config });
      container.register(Greeter, { useClass: Greeter });
    },
    apply(hooks, ctx) {
      const greeter = ctx.container.resolve(Greeter);
      hooks.specBuild.tapPromise({ name: PLUGIN_NAME, stage: Stage.NORMAL }, async (spec) => greeter.apply(spec));
    },
  });
}

/** berthd loads a module's default export: a plugin, or a function of no arguments returning one. */
export default examplePlugin;
