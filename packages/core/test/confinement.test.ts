/**
 * Create refuses a confinement option that no loaded plugin enforces (verifyConfinement via
 * verifyHostConfig's `securityOptions`): apparmor=NAME without `name=apparmor`, a custom seccomp
 * profile without `name=seccomp`; unconfined and builtin pass; without the list nothing is checked.
 */
import { describe, expect, it } from 'vitest';
import { errorKind } from '../src/errors.js';
import { verifyHostConfig } from '../src/hostconfig-validate.js';

const create = (SecurityOpt: string[], securityOptions?: string[]) => () => verifyHostConfig({ SecurityOpt }, { mode: 'create', ...(securityOptions ? { securityOptions } : {}) });

describe('confinement options need the plugin that enforces them', () => {
  it('apparmor=NAME is refused (400) when AppArmor is not active, accepted when it is', () => {
    expect.assertions(4);
    try {
      create(['apparmor=my-profile'], ['name=seccomp,profile=builtin'])();
    } catch (err) {
      expect(errorKind(err)).toBe('InvalidParameter');
      expect((err as Error).message).toMatch(/apparmor=my-profile: AppArmor is not enabled on this daemon/);
    }
    expect(create(['apparmor=my-profile'], ['name=apparmor'])).not.toThrow();
    expect(create(['apparmor=unconfined'], [])).not.toThrow();
  });

  it('UsernsMode other than host is refused (400) without name=userns (the userns plugin), accepted with it', () => {
    const userns = (UsernsMode: string, securityOptions: string[]) => () => verifyHostConfig({ UsernsMode }, { mode: 'create', securityOptions });
    expect(userns('auto', ['name=seccomp,profile=builtin'])).toThrow(/invalid UsernsMode "auto": user namespaces are not enabled on this daemon/);
    let err: unknown;
    try {
      userns('private', [])();
    } catch (e) {
      err = e;
    }
    expect(errorKind(err)).toBe('InvalidParameter');
    expect(userns('auto', ['name=userns'])).not.toThrow();
    expect(userns('host', [])).not.toThrow();
    expect(userns('', [])).not.toThrow();
  });

  it('a custom seccomp profile is refused without name=seccomp; unconfined and builtin are not', () => {
    expect(create(['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'], ['name=apparmor'])).toThrow(/cannot run a custom seccomp profile/);
    expect(create(['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'], ['name=seccomp,profile=builtin'])).not.toThrow();
    expect(create(['seccomp=unconfined', 'seccomp=builtin'], [])).not.toThrow();
  });

  it('without the list (update, or a caller that does not know) nothing is checked', () => {
    expect(create(['apparmor=x', 'seccomp={}'])).not.toThrow();
  });
});
