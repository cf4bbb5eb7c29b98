import { describe, expect, it } from 'vitest';
import { buildResolvConf, isLoopbackAddress, parseExtraHost, parseResolvConf } from '../src/files.js';

describe('parseExtraHost', () => {
  it('splits on the first "=" if any, else the first ":"', () => {
    expect(parseExtraHost('a:10.0.0.1')).toEqual({ name: 'a', ip: '10.0.0.1' });
    expect(parseExtraHost('a=10.0.0.1')).toEqual({ name: 'a', ip: '10.0.0.1' });
    expect(parseExtraHost('v6:::1')).toEqual({ name: 'v6', ip: '::1' });
    expect(parseExtraHost('v6=[fe80::1]')).toEqual({ name: 'v6', ip: 'fe80::1' });
  });
  it('refuses what dockerd refuses', () => {
    expect(() => parseExtraHost('x')).toThrow('bad format for add-host: "x"');
    expect(() => parseExtraHost('=1.2.3.4')).toThrow('bad format for add-host: "=1.2.3.4"');
    expect(() => parseExtraHost('x:')).toThrow('invalid IP address in add-host: ""');
    expect(() => parseExtraHost('x:1.2.3.4.5')).toThrow('invalid IP address in add-host: "1.2.3.4.5"');
    expect(() => parseExtraHost('x:[1.2.3.4]')).toThrow('invalid IP address in add-host: "[1.2.3.4]"');
  });
});

describe('resolv.conf', () => {
  it('loopback detection', () => {
    for (const a of ['127.0.0.1', '127.0.0.53', '127.255.255.254', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) expect(isLoopbackAddress(a), a).toBe(true);
    for (const a of ['10.0.0.1', '128.0.0.1', 'fe80::1', '::', 'bogus']) expect(isLoopbackAddress(a), a).toBe(false);
  });
  it('parses directives; the last search/domain line wins', () => {
    const p = parseResolvConf('domain a\nsearch b c\nnameserver 1.1.1.1\n; comment\noptions x\noptions y\nsortlist 10.0.0.0\n');
    expect(p).toEqual({ nameservers: ['1.1.1.1'], search: ['b', 'c'], options: ['x', 'y'], other: ['; comment', 'sortlist 10.0.0.0'] });
  });
  it('keeps host loopback nameservers only outside a namespace of its own', () => {
    expect(buildResolvConf({ host: 'nameserver 127.0.0.1\n', ownNetns: false })).toBe('nameserver 127.0.0.1\n');
    expect(buildResolvConf({ host: 'nameserver 127.0.0.1\n', ownNetns: true })).toBe('nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
    expect(buildResolvConf({ host: 'nameserver 127.0.0.1\n', ownNetns: true, dns: ['9.9.9.9'] })).toBe('nameserver 9.9.9.9\n');
  });
});
