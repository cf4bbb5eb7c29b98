/**
 * exec's user lookup (`docker exec -u`): the container's /etc/passwd and /etc/group are read
 * with the spec builder's in-root resolution (a symlink inside the rootfs resolves as if the
 * rootfs were `/`), never following a link onto the host's files; the result is the spec
 * builder's (primary gid, supplementary groups, HostConfig.GroupAdd), as dockerd's getUser.
 */
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestEngine, type TestEngine } from '../../testing/src/index.js';
import { InvalidParameterError, type OciUser } from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

/** Replace the rootfs's etc/<file> with a symlink to an absolute path that also exists on the host. */
async function linkOutOfRoot(rootfs: string, file: 'passwd' | 'group', hostPath: string, hostContent: string, inRootContent?: string): Promise<void> {
  await mkdir(dirname(hostPath), { recursive: true });
  await writeFile(hostPath, hostContent);
  if (inRootContent !== undefined) {
    await mkdir(dirname(join(rootfs, hostPath)), { recursive: true });
    await writeFile(join(rootfs, hostPath), inRootContent);
  }
  await rm(join(rootfs, 'etc', file));
  await symlink(hostPath, join(rootfs, 'etc', file));
}

async function execUser(id: string, user: string): Promise<OciUser> {
  const { Id } = await t!.engine.execs.create(id, { Cmd: ['id'], User: user });
  await t!.engine.execs.start(Id);
  const calls = t!.fake.callsOf('exec', id);
  return (calls[calls.length - 1]!.args[0] as { process: { user: OciUser } }).process.user;
}

describe('exec user lookup inside the rootfs', () => {
  it('an etc/passwd symlink to an absolute path resolves inside the rootfs, not on the host', async () => {
    t = await createTestEngine({ specDefaults: false });
    // The "host" file lies outside the rootfs (in the test's temp dir), at an absolute path.
    const hostPasswd = join(t.dir, 'host', 'passwd');
    await linkOutOfRoot(t.rootfs, 'passwd', hostPasswd, 'svc:x:4242:4242::/:/bin/sh\nhostonly:x:4343:4343::/:/bin/sh\n', 'svc:x:1000:1001::/:/bin/sh\n');
    const id = await t.createContainer({ Config: { Cmd: ['x'] } });
    await t.engine.containers.start(id);
    expect(await execUser(id, 'svc')).toMatchObject({ uid: 1000, gid: 1001 });
    // A user only the host's file knows is unknown in the container (dockerd: 400, no exec made).
    const { Id } = await t.engine.execs.create(id, { Cmd: ['id'], User: 'hostonly' });
    await expect(t.engine.execs.start(Id)).rejects.toBeInstanceOf(InvalidParameterError);
  });

  it('an etc/group symlink to an absolute path resolves inside the rootfs too', async () => {
    t = await createTestEngine({ specDefaults: false });
    const hostGroup = join(t.dir, 'host', 'group');
    await linkOutOfRoot(t.rootfs, 'group', hostGroup, 'staff:x:4444:\n', 'staff:x:50:\n');
    const id = await t.createContainer({ Config: { Cmd: ['x'] } });
    await t.engine.containers.start(id);
    expect(await execUser(id, 'nobody:staff')).toMatchObject({ uid: 65534, gid: 50 });
  });

  it("is the spec builder's resolution: supplementary groups and HostConfig.GroupAdd", async () => {
    t = await createTestEngine({ specDefaults: false });
    await writeFile(join(t.rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\nwheel:x:10:nobody\naudio:x:29:\n');
    const id = await t.createContainer({ Config: { Cmd: ['x'] }, HostConfig: { GroupAdd: ['audio'] } });
    await t.engine.containers.start(id);
    expect(await execUser(id, 'nobody')).toEqual({ uid: 65534, gid: 65534, additionalGids: [65534, 10, 29] });
  });
});
