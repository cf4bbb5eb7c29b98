/** The one /proc/self/mountinfo parser (core/src/mountinfo.ts): every field its users read, escapes decoded. */
import { describe, expect, it } from 'vitest';
import { mountPointsUnder, parseMountInfo, readMountInfo, readMountInfoSync } from '../src/index.js';

const SAMPLE = [
  '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro',
  '35 22 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid master:9 - cgroup cgroup rw,cpu,cpuacct',
  '36 22 0:31 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd',
  '40 22 0:50 / /var/lib/berth/overlay/abc/merged rw,relatime - overlay overlay rw,lowerdir=/l1:/l2,upperdir=/u,workdir=/w',
  '41 22 8:1 /srv/with\\040space /var/lib/berth/overlay/abc/merged/data rw - ext4 /dev/sda1 rw',
  'garbage line',
  '',
].join('\n');

describe('mountinfo', () => {
  it('parses the fields, decoding octal escapes; malformed lines are skipped', () => {
    const m = parseMountInfo(SAMPLE);
    expect(m.map((e) => e.mountPoint)).toEqual(['/', '/sys/fs/cgroup/cpu,cpuacct', '/sys/fs/cgroup/systemd', '/var/lib/berth/overlay/abc/merged', '/var/lib/berth/overlay/abc/merged/data']);
    expect(m[0]).toEqual({ mountPoint: '/', root: '/', optional: ['shared:1'], fsType: 'ext4', source: '/dev/sda1', superOptions: ['rw', 'errors=remount-ro'] });
    expect(m[1]).toMatchObject({ fsType: 'cgroup', optional: ['master:9'], superOptions: ['rw', 'cpu', 'cpuacct'] });
    expect(m[2]!.superOptions).toContain('name=systemd');
    expect(m[3]).toMatchObject({ fsType: 'overlay', source: 'overlay', optional: [] });
    expect(m[4]!.root).toBe('/srv/with space');
  });

  it('lists the mount points at or below a directory, not its namesakes', () => {
    const m = parseMountInfo(SAMPLE);
    expect(mountPointsUnder('/var/lib/berth/overlay/abc/merged', m)).toEqual(['/var/lib/berth/overlay/abc/merged', '/var/lib/berth/overlay/abc/merged/data']);
    expect(mountPointsUnder('/var/lib/berth/overlay/ab', m)).toEqual([]);
    expect(mountPointsUnder('/sys/fs/cgroup/', m)).toEqual(['/sys/fs/cgroup/cpu,cpuacct', '/sys/fs/cgroup/systemd']);
  });

  it("reads this process's mounts (/ and /proc are always there)", async () => {
    const points = (await readMountInfo()).map((e) => e.mountPoint);
    expect(points).toContain('/');
    expect(points).toContain('/proc');
    expect(readMountInfoSync().map((e) => e.mountPoint)).toEqual(points);
  });
});
