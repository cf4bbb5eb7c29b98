// Process discovery, memory accounting (RSS and PSS, in bytes) and fd counts from /proc.
import fs from 'node:fs';

export function listPids() {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

export function cmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return null;
  }
}

/** {rss, pss, anon, file} in bytes (anon/file: RssAnon, RssFile — private memory vs the binary's and libraries' pages), or null when the process is gone. */
export function memoryOf(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
    const anon = Number(/^RssAnon:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) * 1024;
    const file = Number(/^RssFile:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) * 1024;
    let pss = NaN;
    try {
      const roll = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      pss = Number(/^Pss:\s+(\d+) kB/m.exec(roll)?.[1] ?? NaN) * 1024;
    } catch {
      /* no smaps_rollup */
    }
    return { rss, pss, anon, file };
  } catch {
    return null;
  }
}

/** Pids whose argv matches pred(argv). */
export function findProcs(pred) {
  const out = [];
  for (const pid of listPids()) {
    if (pid === process.pid) continue;
    const argv = cmdline(pid);
    if (argv && argv.length && pred(argv)) out.push(pid);
  }
  return out;
}

/** Sum of RSS/PSS over the given pids, with a per-group breakdown. */
export function sumMemory(groups) {
  const out = { rss: 0, pss: 0, groups: {} };
  for (const [name, pids] of Object.entries(groups)) {
    const g = { count: 0, rss: 0, pss: 0 };
    for (const pid of pids) {
      const m = memoryOf(pid);
      if (!m) continue;
      g.count++;
      g.rss += m.rss;
      g.pss += m.pss;
    }
    out.groups[name] = g;
    out.rss += g.rss;
    out.pss += g.pss;
  }
  return out;
}

/** Number of open file descriptors of pid (entries of /proc/<pid>/fd), NaN when it is gone. */
export function fdCount(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
