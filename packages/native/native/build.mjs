// Builds dist/native/berth.node from native/*.c with the system C compiler and Node's
// own headers (<prefix>/include/node). Optional: without a compiler or headers it says so, and
// berth uses the mount/umount binaries and child_process instead (src/index.ts).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(pkg, 'native');
const sources = ['berth.c', 'spawn.c', 'fs.c', 'proc.c', 'idmap.c', 'abi.c', 'files.c', 'memory.c', 'remove.c'].map((f) => path.join(dir, f));
const inputs = [...sources, path.join(dir, 'common.h')];
const out = path.join(pkg, 'dist/native/berth.node');
const include = path.resolve(path.dirname(process.execPath), '../include/node');
const cc = process.env.CC || 'cc';

if (process.platform !== 'linux') process.exit(0);
if (!fs.existsSync(path.join(include, 'node_api.h'))) {
  console.warn(`[native] no Node headers in ${include}: berth falls back to the binaries and child_process`);
  process.exit(0);
}
if (fs.existsSync(out) && inputs.every((f) => fs.statSync(out).mtimeMs >= fs.statSync(f).mtimeMs)) process.exit(0);
fs.mkdirSync(path.dirname(out), { recursive: true });
try {
  execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-Wno-unused-parameter', '-shared', '-fPIC', '-DNODE_GYP_MODULE_NAME=berth', `-I${include}`, '-o', `${out}.tmp`, ...sources, '-lm'], { stdio: 'inherit' });
  fs.renameSync(`${out}.tmp`, out);
} catch (err) {
  fs.rmSync(`${out}.tmp`, { force: true });
  console.warn(`[native] building the native addon failed (${err.message}): berth falls back to the binaries and child_process`);
}
