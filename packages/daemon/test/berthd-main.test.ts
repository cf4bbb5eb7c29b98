/**
 * berthdMain() before it starts anything, and how the build file finds a plugin module: the
 * exit codes of --help, --version and a bad command line; npm package resolution (exports
 * conditions, subpaths, main) and the refusals that name what is wrong. No daemon is started.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { berthdMain, importPlugin, resolvePackage, UsageError } from '../src/index.js';

let dir: string | undefined;
afterEach(() => {
  vi.restoreAllMocks();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** Capture what berthdMain writes to stdout and stderr. */
function capture(): { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((err += String(s)), true));
  return { out: () => out, err: () => err };
}

/** A package `name` under `dir`/node_modules with this manifest and files. */
function pkg(name: string, manifest: object, files: Record<string, string>): void {
  const root = path.join(dir!, 'node_modules', name);
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(path.join(root, 'package.json'), JSON.stringify({ name, ...manifest }));
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    fs.writeFileSync(path.join(root, f), text);
  }
}

describe('berthdMain before the daemon starts', () => {
  it('--help (with the build\'s flags) and --version exit 0; a bad flag exits 125 naming it', async () => {
    const io = capture();
    const flags = { 'audit-level': { plugin: 'audit', key: 'level', type: 'string', description: 'How much the audit plugin says' } } as const;
    expect(await berthdMain(['--help'], { flags })).toBe(0);
    expect(io.out()).toContain('Usage: berthd [OPTIONS]');
    expect(io.out()).toContain('--audit-level string');
    expect(await berthdMain(['--version'])).toBe(0);
    expect(io.out()).toMatch(/berthd version \d+\.\d+\.\d+/);
    expect(await berthdMain(['--audit-level', 'x'])).toBe(125);
    expect(io.err()).toContain("berthd: Unknown option '--audit-level'");
  });
});

describe('finding a plugin package', () => {
  it('follows exports (nested conditions, subpaths) and main, from the first directory that has it', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-resolve-'));
    pkg('@acme/a', { exports: { '.': { types: './a.d.ts', node: { import: './a.mjs', require: './a.cjs' } }, './extra': './extra.mjs' } }, { 'a.mjs': '', 'extra.mjs': '' });
    pkg('b', { main: 'lib/b.js' }, { 'lib/b.js': '' });
    pkg('c', { exports: './c.mjs' }, { 'c.mjs': '' });
    pkg('e', { exports: { node: { require: './e.cjs' }, default: './e.mjs' } }, { 'e.mjs': '' });
    const real = fs.realpathSync(dir);
    expect(resolvePackage('@acme/a', ['/nowhere', path.join(dir, 'sub/deeper')])).toBe(path.join(real, 'node_modules/@acme/a/a.mjs'));
    expect(resolvePackage('@acme/a/extra', [dir])).toBe(path.join(real, 'node_modules/@acme/a/extra.mjs'));
    expect(resolvePackage('b', [dir])).toBe(path.join(real, 'node_modules/b/lib/b.js'));
    expect(resolvePackage('c', [dir])).toBe(path.join(real, 'node_modules/c/c.mjs'));
    expect(resolvePackage('e', [dir])).toBe(path.join(real, 'node_modules/e/e.mjs'));
    const d = dir;
    expect(() => resolvePackage('@acme/a/hidden', [d])).toThrow(/exports no \.\/hidden/);
    expect(() => resolvePackage('d', [d])).toThrow(UsageError);
  });

  it('refuses a module whose default export is no plugin, and one that does not import', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-resolve-'));
    fs.writeFileSync(path.join(dir, 'none.mjs'), 'export const x = 1;\n');
    fs.writeFileSync(path.join(dir, 'broken.mjs'), 'export default (;\n');
    await expect(importPlugin(path.join(dir, 'none.mjs'), [])).rejects.toThrow(/the default export must be a plugin \(definePlugin\) or a function returning one/);
    await expect(importPlugin(path.join(dir, 'broken.mjs'), [])).rejects.toThrow(/cannot import/);
    await expect(importPlugin(path.join(dir, 'missing.mjs'), [])).rejects.toThrow(/no such file/);
  });
});
