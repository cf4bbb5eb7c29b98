import { describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import { familiarString, matchReferencePattern, parseNormalizedNamed, parseReference, referenceString } from '../src/reference.js';
import { applyChanges } from '../src/changes.js';
import { mergeImageConfig } from '../src/merge.js';
import { parsePlatform, selectManifest } from '../src/platform.js';
import { decodeRegistryAuth, encodeRegistryAuth, parseChallenges } from '../src/registry/auth.js';

const D = `sha256:${'ab'.repeat(32)}`;

describe('references', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['foo/bar', 'docker.io/foo/bar:latest', 'foo/bar:latest'],
    ['localhost/foo', 'localhost/foo:latest', 'localhost/foo:latest'],
    ['127.0.0.1:5000/busybox', '127.0.0.1:5000/busybox:latest', '127.0.0.1:5000/busybox:latest'],
    ['registry.example.com:443/a/b/c:v1', 'registry.example.com:443/a/b/c:v1', 'registry.example.com:443/a/b/c:v1'],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`, `busybox@${D}`],
    [`busybox:1@${D}`, `docker.io/library/busybox:1@${D}`, `busybox:1@${D}`],
  ])('%s → %s', (input, full, familiar) => {
    const r = parseNormalizedNamed(input);
    expect(referenceString(r)).toBe(full);
    expect(familiarString(r)).toBe(familiar);
  });

  it.each([['Busybox', 'invalid reference format: repository name (library/Busybox) must be lowercase'], ['busybox:', 'invalid reference format'], ['a b', 'invalid reference format'], ['busybox@sha256:12', 'invalid reference format'], [':tag', 'invalid reference format'], ['ab'.repeat(32), `invalid repository name (${'ab'.repeat(32)}), cannot specify 64-byte hexadecimal strings`]])(
    'refuses %s',
    (input, message) => {
      let err: unknown;
      try {
        parseReference(input);
      } catch (e) {
        err = e;
      }
      expect((err as Error).message).toBe(message);
      expect(errorKind(err)).toBe('InvalidParameter');
    },
  );

  it('matches reference filter patterns like docker images --filter reference=', () => {
    const r = parseNormalizedNamed('berth-test/busybox:latest');
    expect(matchReferencePattern(r, 'berth-test/busybox')).toBe(true);
    expect(matchReferencePattern(r, 'berth-test/*')).toBe(true);
    expect(matchReferencePattern(r, '*:latest')).toBe(false); // * does not cross '/'
    expect(matchReferencePattern(r, '*/*:latest')).toBe(true);
    expect(matchReferencePattern(r, 'busybox')).toBe(false);
    expect(matchReferencePattern(r, 'berth-test/busybox:1.*')).toBe(false);
  });
});

describe('mergeImageConfig (dockerd create merge)', () => {
  const image = {
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers' as const, diff_ids: [] },
    config: {
      Cmd: ['sh'],
      Entrypoint: ['/entry'],
      Env: ['PATH=/bin', 'A=image'],
      WorkingDir: '/w',
      User: 'nobody',
      ExposedPorts: { '80/tcp': {} },
      Volumes: { '/data': {} },
      Labels: { a: '1', b: '2' },
      StopSignal: 'SIGQUIT',
      Healthcheck: { Test: ['CMD', 'true'], Interval: 5, Retries: 3 },
    },
  };
  it('fills what the container leaves empty', () => {
    const c = mergeImageConfig(image, { Image: 'x' });
    expect(c).toMatchObject({ Cmd: ['sh'], Entrypoint: ['/entry'], Env: ['PATH=/bin', 'A=image'], WorkingDir: '/w', User: 'nobody', StopSignal: 'SIGQUIT', Volumes: { '/data': {} }, ExposedPorts: { '80/tcp': {} }, Labels: { a: '1', b: '2' } });
    expect(c.Healthcheck).toEqual({ Test: ['CMD', 'true'], Interval: 5, Retries: 3 });
  });
  it('the container wins; Env merges by key with the container first; unions for ports, volumes, labels', () => {
    const c = mergeImageConfig(image, { Cmd: ['echo', 'hi'], Env: ['A=ctr', 'B=2'], User: 'root', ExposedPorts: { '443/tcp': {} }, Labels: { b: 'x' }, Healthcheck: { Test: [], Timeout: 7 } });
    expect(c.Cmd).toEqual(['echo', 'hi']);
    expect(c.Entrypoint).toEqual(['/entry']);
    expect(c.Env).toEqual(['A=ctr', 'B=2', 'PATH=/bin']);
    expect(c.User).toBe('root');
    expect(c.ExposedPorts).toEqual({ '80/tcp': {}, '443/tcp': {} });
    expect(c.Labels).toEqual({ a: '1', b: 'x' });
    expect(c.Healthcheck).toEqual({ Test: ['CMD', 'true'], Timeout: 7, Interval: 5, Retries: 3 });
  });
  it('an explicit empty Entrypoint clears the image entrypoint but keeps its Cmd', () => {
    const c = mergeImageConfig(image, { Entrypoint: [] });
    expect(c.Entrypoint).toEqual([]);
    expect(c.Cmd).toEqual(['sh']);
  });
  it('a container Entrypoint drops the image Cmd', () => {
    const c = mergeImageConfig(image, { Entrypoint: ['/bin/true'] });
    expect(c.Entrypoint).toEqual(['/bin/true']);
    expect(c.Cmd).toBeUndefined();
  });
  it('is pure', () => {
    const ctr = { Env: ['X=1'] };
    const snapshot = JSON.stringify([image, ctr]);
    mergeImageConfig(image, ctr);
    expect(JSON.stringify([image, ctr])).toBe(snapshot);
  });
});

describe('--change instructions', () => {
  it('applies CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL', () => {
    const c = applyChanges({ Env: ['A=1'] }, [
      'CMD ["echo","hi"]',
      'ENV A=2 B="two words"',
      'ENV C legacy form',
      'EXPOSE 80 53/udp',
      'LABEL x=y "z"="w"',
      'USER nobody',
      'VOLUME ["/data"]',
      'WORKDIR /srv',
      'WORKDIR app',
      'STOPSIGNAL SIGTERM',
    ]);
    expect(c).toMatchObject({ Cmd: ['echo', 'hi'], Env: ['A=2', 'B=two words', 'C=legacy form'], ExposedPorts: { '80/tcp': {}, '53/udp': {} }, Labels: { x: 'y', z: 'w' }, User: 'nobody', Volumes: { '/data': {} }, WorkingDir: '/srv/app', StopSignal: 'SIGTERM' });
    expect(applyChanges({}, ['CMD echo hi']).Cmd).toEqual(['/bin/sh', '-c', 'echo hi']);
  });
  it('refuses instructions docker does not allow', () => {
    expect(() => applyChanges({}, ['RUN rm -rf /'])).toThrow('RUN is not a valid change command');
    expect(() => applyChanges({}, ['EXPOSE abc'])).toThrow('invalid containerPort: abc');
  });
});

describe('platforms and auth', () => {
  it('parses platforms and selects from an index', () => {
    expect(parsePlatform('linux/amd64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/arm64')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(() => parsePlatform('linux//x')).toThrow('invalid platform');
    const m = (architecture: string, variant?: string) => ({ mediaType: 'm', digest: `sha256:${architecture.padEnd(64, '0').slice(0, 64)}` as `sha256:${string}`, size: 1, platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) } });
    const list = [m('arm', 'v6'), m('arm', 'v7'), m('amd64'), m('arm64', 'v8')];
    expect(selectManifest(list, parsePlatform('linux/arm/v7'))?.platform?.variant).toBe('v7');
    expect(selectManifest(list, parsePlatform('linux/amd64'))?.platform?.architecture).toBe('amd64');
    expect(selectManifest(list, parsePlatform('linux/s390x'))).toBeNull();
  });
  it('decodes X-Registry-Auth and challenges', () => {
    expect(decodeRegistryAuth(encodeRegistryAuth({ username: 'u', password: 'p' }))).toEqual({ username: 'u', password: 'p' });
    expect(decodeRegistryAuth(Buffer.from(JSON.stringify({ auth: Buffer.from('a:b:c').toString('base64') })).toString('base64'))).toMatchObject({ username: 'a', password: 'b:c' });
    expect(decodeRegistryAuth('')).toBeNull();
    expect(decodeRegistryAuth('e30=')).toBeNull();
    expect(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' } },
    ]);
    expect(parseChallenges('Basic realm="basic-realm"')).toEqual([{ scheme: 'basic', params: { realm: 'basic-realm' } }]);
  });
});
