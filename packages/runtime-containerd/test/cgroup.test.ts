/**
 * OOM kills from the memory cgroup (the containerd shim's exit status has no OOM mark): the
 * counter file is found from /proc/<pid>/cgroup for cgroup v1 (memory controller's
 * memory.oom_control) and v2 (memory.events), and its `oom_kill` line is read. A fake /proc
 * and cgroup tree in a temp dir; no root.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { oomCounterFile, oomKills } from '../src/cgroup.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tree(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ctd-cgroup-'));
  dirs.push(root);
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    fs.writeFileSync(path.join(root, f), text);
  }
  return root;
}

describe('OOM counter of a container\'s memory cgroup', () => {
  it('cgroup v1: the memory controller\'s memory.oom_control', () => {
    const root = tree({
      'proc/42/cgroup': '5:devices:/berth/c1\n4:memory:/berth/c1\n1:cpu,cpuacct:/berth/c1\n0::/\n',
      'mem/berth/c1/memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n',
    });
    const file = oomCounterFile(42, { proc: path.join(root, 'proc'), memoryV1: path.join(root, 'mem'), unified: path.join(root, 'v2') });
    expect(file).toBe(path.join(root, 'mem/berth/c1/memory.oom_control'));
    expect(oomKills(file)).toBe(2);
  });

  it('cgroup v2: memory.events of the unified hierarchy', () => {
    const root = tree({
      'proc/7/cgroup': '0::/berth/c2\n',
      'v2/berth/c2/memory.events': 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n',
    });
    const file = oomCounterFile(7, { proc: path.join(root, 'proc'), memoryV1: path.join(root, 'mem'), unified: path.join(root, 'v2') });
    expect(file).toBe(path.join(root, 'v2/berth/c2/memory.events'));
    expect(oomKills(file)).toBe(1);
  });

  it('no kill, no process, no file: 0 / null, never a throw', () => {
    const root = tree({ 'proc/8/cgroup': '0::/berth/c3\n', 'v2/berth/c3/memory.events': 'oom 0\noom_kill 0\n' });
    expect(oomKills(oomCounterFile(8, { proc: path.join(root, 'proc'), unified: path.join(root, 'v2') }))).toBe(0);
    expect(oomCounterFile(9, { proc: path.join(root, 'proc') })).toBeNull();
    expect(oomKills(path.join(root, 'gone'))).toBe(0);
    expect(oomKills(null)).toBe(0);
  });
});
