/**
 * The plugin in a test engine from @berth/testing: temp dirs and a fake runtime, no root, no
 * runc. What the fake runtime was given to create is what a real runtime would have run.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PluginConfigError, PluginError, errorKind } from '@berth/core';
import { createTestEngine, type TestEngine } from '@berth/testing';
import { PLUGIN_NAME, examplePlugin } from '../src/index.js';

let t: TestEngine | undefined;

afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

/** Start a container with `env` and return the environment the runtime got. */
async function envOfStartedContainer(te: TestEngine, env: string[] = []): Promise<string[]> {
  const id = await te.createContainer({ Config: { Cmd: ['/bin/true'], Env: env } });
  await te.engine.containers.start(id);
  return te.fake.containers.get(id)!.spec.process?.env ?? [];
}

describe(PLUGIN_NAME, () => {
  it('adds its variable with the default config', async () => {
    t = await createTestEngine({ plugins: [examplePlugin()] });
    expect(await envOfStartedContainer(t)).toContain(`GREETING=hello from ${PLUGIN_NAME}`);
  });

  it('takes the variable and the value from its config', async () => {
    t = await createTestEngine({ plugins: [examplePlugin()], pluginConfig: { [PLUGIN_NAME]: { variable: 'WHO', value: 'me' } } });
    const env = await envOfStartedContainer(t);
    expect(env).toContain('WHO=me');
    expect(env.some((e) => e.startsWith('GREETING='))).toBe(false);
  });

  it("leaves a container's own value alone", async () => {
    t = await createTestEngine({ plugins: [examplePlugin()] });
    const env = await envOfStartedContainer(t, ['GREETING=mine']);
    expect(env.filter((e) => e.startsWith('GREETING='))).toEqual(['GREETING=mine']);
  });

  it('refuses a bad config, naming itself and the key', async () => {
    const err = await createTestEngine({ plugins: [examplePlugin()], pluginConfig: { [PLUGIN_NAME]: { variable: '1 bad' } } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PluginError);
    expect((err as PluginError).plugin).toBe(PLUGIN_NAME);
    expect((err as PluginError).hook).toBe('validateConfig');
    expect(errorKind(err)).toBe('InvalidParameter');
    expect((err as PluginError).cause).toBeInstanceOf(PluginConfigError);
    expect(((err as PluginError).cause as PluginConfigError).key).toBe('variable');
  });
});
