/**
 * Legacy links (HostConfig.Links) through the engine with the FakeRuntime: what create
 * refuses (dockerd's messages and kinds), the environment a linked start gets, the start of
 * a container whose linked container does not run, inspect's "/db:/web/db" form, removing
 * one link (and that it stays removed after a restart), the restart policies at boot starting a
 * linked container first, and dockerd's variable names.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTestEngine, type TestEngine } from '../../testing/src/index.js';
import { errorKind, inspectLinks, linkEnv, parseLink, removeLink } from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

const caught = async (p: Promise<unknown>): Promise<Error> => p.then(
  () => {
    throw new Error('expected a rejection');
  },
  (err: Error) => err,
);

async function engineWithDb(): Promise<TestEngine> {
  t = await createTestEngine();
  const db = await t.createContainer({
    name: 'db',
    Config: { Cmd: ['/bin/db'], Env: ['PATH=/usr/bin', 'HOME=/root', 'POSTGRES_USER=admin', 'EMPTY='], ExposedPorts: { '5432/tcp': {} }, Hostname: 'dbhost' },
  });
  await t.engine.containers.start(db);
  return t;
}

const envOf = (te: TestEngine, id: string): string[] => te.fake.containers.get(id)?.spec.process?.env ?? [];

describe('legacy links', () => {
  it('a linked start gets dockerd\'s variables; Config.Env wins over a link variable', async () => {
    const te = await engineWithDb();
    const web = await te.createContainer({ name: 'web', Config: { Cmd: ['/bin/web'], Env: ['DB_NAME=mine'] }, HostConfig: { Links: ['db:db'] } });
    await te.engine.containers.start(web);
    const env = envOf(te, web);
    expect(env).toContain('DB_PORT=tcp://:5432');
    expect(env).toContain('DB_PORT_5432_TCP=tcp://:5432');
    expect(env).toContain('DB_PORT_5432_TCP_ADDR=');
    expect(env).toContain('DB_PORT_5432_TCP_PORT=5432');
    expect(env).toContain('DB_PORT_5432_TCP_PROTO=tcp');
    expect(env).toContain('DB_ENV_POSTGRES_USER=admin');
    expect(env).toContain('DB_ENV_EMPTY=');
    expect(env.filter((e) => e.startsWith('DB_NAME='))).toEqual(['DB_NAME=mine']);
    expect(env.some((e) => e.startsWith('DB_ENV_PATH=') || e.startsWith('DB_ENV_HOME='))).toBe(false);
    // an exec in the linking container sees them too (its environment comes from the spec)
    const { Id } = await te.engine.execs.create(web, { Cmd: ['env'] });
    await te.engine.execs.start(Id);
    const exec = te.fake.callsOf('exec').at(-1)!.args[0] as { process: { env: string[] } };
    expect(exec.process.env).toContain('DB_ENV_POSTGRES_USER=admin');
  });

  it('a link without an alias uses the name; the alias may differ from the name', async () => {
    const te = await engineWithDb();
    const a = await te.createContainer({ name: 'aa', HostConfig: { Links: ['db'] } });
    const b = await te.createContainer({ name: 'bb', HostConfig: { Links: ['/db:/whatever/my-db'] } });
    await te.engine.containers.start(a);
    await te.engine.containers.start(b);
    expect(envOf(te, a)).toContain('DB_NAME=/aa/db');
    expect(envOf(te, b)).toContain('MY_DB_NAME=/bb/my-db');
  });

  it('create refuses links to a missing container (400, not 404), host networking and bad formats', async () => {
    const te = await engineWithDb();
    const missing = await caught(te.createContainer({ name: 'xx', HostConfig: { Links: ['nosuch:alias'] } }));
    expect(errorKind(missing)).toBe('InvalidParameter');
    expect(missing.message).toBe('could not get container for nosuch: No such container: nosuch');
    const host = await caught(te.createContainer({ name: 'xx', HostConfig: { NetworkMode: 'host', Links: ['db'] } }));
    expect(errorKind(host)).toBe('InvalidParameter');
    expect(host.message).toBe("conflicting options: host type networking can't be used with links. This would result in undefined behavior");
    const hostChild = await te.createContainer({ name: 'hostnet', HostConfig: { NetworkMode: 'host' } });
    const toHost = await caught(te.createContainer({ name: 'xx', HostConfig: { Links: ['hostnet:h'] } }));
    expect(toHost.message).toBe("conflicting options: host type networking can't be used with links. This would result in undefined behavior");
    const shared = await caught(te.createContainer({ name: 'xx', HostConfig: { NetworkMode: `container:${hostChild}`, Links: ['db'] } }));
    expect(shared.message).toBe("conflicting options: container type network can't be used with links. This would result in undefined behavior");
    const bad = await caught(te.createContainer({ name: 'xx', HostConfig: { Links: ['a:b:c'] } }));
    expect(errorKind(bad)).toBe('InvalidParameter');
    expect(bad.message).toBe('bad format for links: a:b:c');
    // nothing was created by the refused requests
    expect(te.engine.containers.has('xx')).toBe(false);
  });

  it('start refuses a link to a container that does not run (409, dockerd\'s words)', async () => {
    const te = await engineWithDb();
    const web = await te.createContainer({ name: 'web', HostConfig: { Links: ['db:data'] } });
    await te.engine.containers.stop('db', { timeout: 0 });
    const err = await caught(te.engine.containers.start(web));
    expect(errorKind(err)).toBe('Conflict');
    expect(err.message).toBe('Cannot link to a non running container: /db AS /web/data');
    expect(te.engine.containers.inspect(web).State.Running).toBe(false);
  });

  it('a link survives a rename of the linked container; inspect shows "/<name>:/<parent>/<alias>"', async () => {
    const te = await engineWithDb();
    const web = await te.createContainer({ name: 'web', HostConfig: { Links: ['db:data', 'db'] } });
    expect(inspectLinks(te.engine.containers.inspect(web), te.engine.containers)).toEqual(['/db:/web/data', '/db:/web/db']);
    await te.engine.containers.rename('db', 'db2');
    expect(inspectLinks(te.engine.containers.inspect(web), te.engine.containers)).toEqual(['/db2:/web/data', '/db2:/web/db']);
    await te.engine.containers.start(web);
    expect(envOf(te, web)).toContain('DATA_NAME=/web/data');
  });

  it('removing one link keeps the other and the containers; it stays removed after a restart', async () => {
    const te = await engineWithDb();
    const web = await te.createContainer({ name: 'web', HostConfig: { Links: ['db:data', 'db'] } });
    await removeLink(te.engine.containers, 'web/data');
    expect(inspectLinks(te.engine.containers.inspect(web), te.engine.containers)).toEqual(['/db:/web/db']);
    expect(te.engine.containers.has('db')).toBe(true);
    await te.restart();
    expect(inspectLinks(te.engine.containers.inspect(web), te.engine.containers)).toEqual(['/db:/web/db']);
    const again = await caught(removeLink(te.engine.containers, '/web/data'));
    expect(errorKind(again)).toBe('NotFound');
    expect(again.message).toBe('No such container: /web/data');
    const noParent = await caught(removeLink(te.engine.containers, 'db'));
    expect(errorKind(noParent)).toBe('Conflict');
    expect(noParent.message).toBe('Conflict, cannot remove the default link name of the container');
    expect(errorKind(await caught(removeLink(te.engine.containers, 'nosuch/db')))).toBe('NotFound');
  });
});

describe('restart policies at boot', () => {
  it('start a linked container before the containers that link to it (dockerd waits for them too)', async () => {
    t = await createTestEngine();
    const te = t;
    const db = await te.createContainer({ name: 'db', HostConfig: { RestartPolicy: { Name: 'always' } } });
    const web = await te.createContainer({ name: 'web', HostConfig: { Links: ['db'], RestartPolicy: { Name: 'always' } } });
    await te.engine.containers.start(db);
    await te.engine.containers.start(web);
    // the daemon goes down and the containers with it (the backend no longer knows them)
    te.fake.forget(db);
    te.fake.forget(web);
    // a slow start: a parent started at the same time would find its linked container not running yet
    te.fake.delay('start', 100);
    await te.restart();
    for (let i = 0; i < 100 && !te.engine.containers.inspect(web).State.Running; i++) await new Promise((r) => setTimeout(r, 10));
    expect(te.engine.containers.inspect(db).State.Running).toBe(true);
    expect(te.engine.containers.inspect(web).State).toMatchObject({ Running: true, Error: '' });
    expect(envOf(te, web)).toContain(`DB_NAME=/web/db`);
  });
});

describe('linkEnv and parseLink', () => {
  it('parses dockerd\'s three forms and refuses the rest', () => {
    expect(parseLink('db')).toEqual({ name: 'db', alias: 'db' });
    expect(parseLink('db:data')).toEqual({ name: 'db', alias: 'data' });
    expect(parseLink('/db:/web/data')).toEqual({ name: 'db', alias: 'data' });
    expect(() => parseLink('')).toThrow('empty string specified for links');
  });

  it('orders tcp first, announces runs of consecutive ports as ranges, upper-cases the alias', () => {
    const env = linkEnv({ name: '/web/my-db', childIp: '172.17.0.2', exposedPorts: ['53/udp', '8081/tcp', '8080/tcp', '9000/tcp'] });
    expect(env).toEqual([
      'MY_DB_PORT=tcp://172.17.0.2:8080',
      'MY_DB_PORT_8080_TCP=tcp://172.17.0.2:8080',
      'MY_DB_PORT_8080_TCP_ADDR=172.17.0.2',
      'MY_DB_PORT_8080_TCP_PORT=8080',
      'MY_DB_PORT_8080_TCP_PROTO=tcp',
      'MY_DB_PORT_8081_TCP=tcp://172.17.0.2:8081',
      'MY_DB_PORT_8081_TCP_ADDR=172.17.0.2',
      'MY_DB_PORT_8081_TCP_PORT=8081',
      'MY_DB_PORT_8081_TCP_PROTO=tcp',
      // the run 8080-8081 is announced once a port outside it (9000) is reached, as dockerd does
      'MY_DB_PORT_9000_TCP=tcp://172.17.0.2:9000',
      'MY_DB_PORT_9000_TCP_ADDR=172.17.0.2',
      'MY_DB_PORT_9000_TCP_PORT=9000',
      'MY_DB_PORT_9000_TCP_PROTO=tcp',
      'MY_DB_PORT_8080_TCP_START=tcp://172.17.0.2:8080',
      'MY_DB_PORT_8080_TCP_PORT_START=8080',
      'MY_DB_PORT_8080_TCP_END=tcp://172.17.0.2:8081',
      'MY_DB_PORT_8080_TCP_PORT_END=8081',
      'MY_DB_PORT_53_UDP=udp://172.17.0.2:53',
      'MY_DB_PORT_53_UDP_ADDR=172.17.0.2',
      'MY_DB_PORT_53_UDP_PORT=53',
      'MY_DB_PORT_53_UDP_PROTO=udp',
      'MY_DB_NAME=/web/my-db',
    ]);
  });
});
