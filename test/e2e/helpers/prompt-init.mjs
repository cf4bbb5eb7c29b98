// Stands in for a real host's init in the killed-monitor tests: a child subreaper that runs
// berthd (`node prompt-init.mjs <berthd args…>`) and reaps every other child of its own at once (on SIGCHLD),
// as systemd does. So an orphan that is not collected by berthd itself is reaped here within a
// few ms and its exit status is gone — as on a host — instead of lingering as a zombie a
// sandbox's lazy pid 1 leaves readable for seconds. Only its own children are waited for (by
// pidfd), never berthd (libuv's child). Signals are passed on; it exits as berthd does.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const addon = createRequire(import.meta.url)(path.resolve(here, '../../../packages/native/dist/native/berth.node'));
addon.setChildSubreaper(true);
const child = spawn(process.execPath, process.argv.slice(2), { stdio: 'inherit' });

function reapOrphans() {
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === child.pid) continue;
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] !== 'Z' || Number(f[1]) !== process.pid) continue;
    let fd = -1;
    try {
      fd = addon.pidfdOpen(Number(name));
      addon.waitPidfd(fd);
    } catch {
      /* gone meanwhile */
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  }
}

process.on('SIGCHLD', reapOrphans);
// SIGCHLD does it at once; the interval is a backstop for coalesced signals.
const sweep = setInterval(reapOrphans, 200);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => {
  clearInterval(sweep);
  process.exit(code ?? 128 + (signal === 'SIGKILL' ? 9 : 15));
});
