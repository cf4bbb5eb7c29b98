/**
 * Test helper for the reaper tests here and the e2e monitor tests (test/e2e/runtime-monitor):
 * the zombie children of a process, read from /proc — what a parent that does not reap leaves.
 */
import fs from 'node:fs';

/** The zombie children (state Z) of `parent`. */
export function zombieChildren(parent: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (f[0] === 'Z' && Number(f[1]) === parent) out.push(Number(name));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}
