/**
 * newContainerRecord / withHostConfigDefaults: the builders create uses, shared with the test
 * kit (makeContainer) and the spec tests (makeRecord), so test records cannot drift from
 * what the engine stores.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTestEngine, type TestEngine } from '../../testing/src/index.js';
import { ZERO_TIME, initialState, newContainerRecord, newNetworkSettings, withHostConfigDefaults } from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

describe('newContainerRecord', () => {
  it('is what create stores, field for field', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ name: 'same', Config: { Entrypoint: ['/bin/sh', '-c'], Cmd: ['exit 3'] }, HostConfig: { NetworkMode: 'host' } });
    const stored = t.engine.containers.get(id);
    const built = newContainerRecord({
      ID: stored.ID,
      Name: stored.Name,
      Created: stored.Created,
      Config: stored.Config,
      HostConfig: stored.HostConfig,
      LogPath: stored.LogPath,
      Mounts: stored.Mounts,
      BaseFS: t.rootfs,
    });
    expect(built).toEqual(stored);
    expect(Object.keys(built)).toEqual(Object.keys(stored));
  });

  it('derives Path/Args and networks, and lets any field win', () => {
    const rec = newContainerRecord({ ID: 'a', Name: '/a', Created: ZERO_TIME, Config: { Entrypoint: ['tini', '--'], Cmd: ['sleep', '1'] }, HostConfig: { NetworkMode: 'bridge' } });
    expect([rec.Path, rec.Args]).toEqual(['tini', ['--', 'sleep', '1']]);
    expect(rec.State).toEqual(initialState());
    expect(rec.NetworkSettings).toEqual({ Bridge: '', SandboxID: '', SandboxKey: '', Ports: {}, Networks: { bridge: {} } });
    expect(newContainerRecord({ ID: 'b', Name: '/b', Created: ZERO_TIME, Config: {}, HostConfig: { NetworkMode: 'container:a' } }).NetworkSettings.Networks).toEqual({});
    expect(newContainerRecord({ ID: 'c', Name: '/c', Created: ZERO_TIME, Config: {}, HostConfig: {} }).Path).toBe('');
    const custom = newContainerRecord({ ID: 'd', Name: '/d', Created: ZERO_TIME, Config: { Cmd: ['x'] }, HostConfig: {}, Path: 'y', NetworkSettings: newNetworkSettings({ n: {} }) });
    expect(custom.Path).toBe('y');
    expect(custom.NetworkSettings.Networks).toEqual({ n: {} });
  });

  it('two records never share their State or NetworkSettings objects', () => {
    const a = newContainerRecord({ ID: 'a', Name: '/a', Created: ZERO_TIME, Config: {}, HostConfig: { NetworkMode: 'bridge' } });
    const b = newContainerRecord({ ID: 'b', Name: '/b', Created: ZERO_TIME, Config: {}, HostConfig: { NetworkMode: 'bridge' } });
    a.State.Pid = 7;
    a.NetworkSettings.Networks.bridge!.IPAddress = '10.0.0.2';
    expect(b.State.Pid).toBe(0);
    expect(b.NetworkSettings.Networks.bridge).toEqual({});
  });
});

describe('withHostConfigDefaults', () => {
  it("fills dockerd's stored defaults and keeps what is set", () => {
    expect(withHostConfigDefaults({}, 'runc')).toEqual({
      Runtime: 'runc',
      NetworkMode: 'bridge',
      LogConfig: { Type: 'json-file', Config: {} },
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
    });
    expect(withHostConfigDefaults({ Runtime: 'crun', Memory: 5, RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2 } }, 'runc')).toMatchObject({
      Runtime: 'crun',
      Memory: 5,
      RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2 },
    });
  });
});
