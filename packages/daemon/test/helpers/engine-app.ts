/**
 * An engine on the FakeRuntime behind the daemon's app, for route tests: `open()` it in a test,
 * and it is closed after each test (the afterEach is registered by `engineApp()`).
 *
 *   const app = engineApp();
 *   it('…', async () => { const { t, inj } = await app.open({ runtime }); … });
 */
import { afterEach } from 'vitest';
import { createTestEngine, type TestEngine, type TestEngineOptions } from '@berth/testing';
import { apiRoutes, buildApp, enginePort, openInjector, type EnginePortOptions, type Injector } from '../../src/index.js';
import { facts } from './fake-port.js';

export function engineApp(): { open(engine?: TestEngineOptions, backend?: Partial<EnginePortOptions>): Promise<{ t: TestEngine; inj: Injector }> } {
  let t: TestEngine | undefined;
  let inj: Injector | undefined;
  afterEach(async () => {
    await inj?.close();
    await t?.dispose();
    inj = undefined;
    t = undefined;
  });
  return {
    async open(engine = {}, backend = {}) {
      t = await createTestEngine(engine);
      inj = await openInjector(buildApp({ routes: apiRoutes(enginePort(t.engine, { facts: facts(), ...backend })) }));
      return { t, inj };
    },
  };
}
