/**
 * Every berth package is installable from outside the repository as `pnpm pack` leaves it:
 * the packed package.json has no workspace or catalog ranges and no workspace-only export
 * condition, its entry points and bins are in the tarball, it ships its README and no build
 * cache, sibling packages are `^` ranges (pnpm's `workspace:^`), and only the hosts (daemon,
 * cli) depend on tsyringe/tapable — every other package takes them as peers, and @berth/testing
 * takes @berth/core as one, so a plugin, its tests and berthd share one copy of each.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '../../..');
/** The packages that host the engine (berthd and its library): they bring tsyringe and tapable. */
const HOSTS = new Set(['@berth/daemon', '@berth/cli']);
const SHARED = ['tsyringe', 'tapable'];

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  license?: string;
  main?: string;
  types?: string;
  exports?: Record<string, Record<string, string>>;
  bin?: Record<string, string>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

const sources: { dir: string; manifest: Manifest }[] = ['packages', 'plugins'].flatMap((top) =>
  readdirSync(join(REPO, top))
    .map((d) => join(REPO, top, d))
    .filter((dir) => existsSync(join(dir, 'package.json')))
    .map((dir) => ({ dir, manifest: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest }))
    .filter((p) => !p.manifest.private),
);

function skipReason(): string | null {
  try {
    execFileSync('pnpm', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'pnpm is not on PATH';
  }
  const unbuilt = sources.filter((s) => !existsSync(join(s.dir, 'dist', 'index.js'))).map((s) => s.manifest.name);
  return unbuilt.length > 0 ? `not built (pnpm build): ${unbuilt.join(', ')}` : null;
}

const reason = skipReason();
let out = '';
const packed = new Map<string, { manifest: Manifest; text: string; entries: Set<string> }>();

beforeAll(() => {
  if (reason) return;
  out = mkdtempSync(join(tmpdir(), 'berth-packed-'));
  execFileSync('pnpm', ['-r', '--filter', './packages/*', '--filter', './plugins/*', 'pack', '--pack-destination', out], { cwd: REPO, stdio: 'pipe' });
  for (const f of readdirSync(out).filter((n) => n.endsWith('.tgz'))) {
    const tgz = join(out, f);
    const text = execFileSync('tar', ['xzOf', tgz, 'package/package.json'], { encoding: 'utf8' });
    const entries = new Set(execFileSync('tar', ['tzf', tgz], { encoding: 'utf8' }).split('\n').filter(Boolean).map((e) => e.replace(/^package\//, '')));
    const manifest = JSON.parse(text) as Manifest;
    packed.set(manifest.name, { manifest, text, entries });
  }
}, 120_000);

afterAll(() => {
  if (out) rmSync(out, { recursive: true, force: true });
});

describe.skipIf(reason !== null)(`packed manifests${reason ? ` (skipped: ${reason})` : ''}`, () => {
  it('every package is packed', () => {
    expect([...packed.keys()].sort()).toEqual(sources.map((s) => s.manifest.name).sort());
  });

  it("@berth/testing takes @berth/core as a peer: a plugin's tests run its harness on the plugin's own core", () => {
    const { manifest } = packed.get('@berth/testing')!;
    expect(manifest.dependencies ?? {}).not.toHaveProperty('@berth/core');
    expect(manifest.peerDependencies).toHaveProperty('@berth/core');
  });

  describe.each(sources.map((s) => s.manifest.name))('%s', (name) => {
    const get = () => packed.get(name)!;
    const file = (p: string) => p.replace(/^\.\//, '');

    it('has no workspace or catalog range; a sibling package by ^ its version (one copy when berth is installed beside a plugin)', () => {
      const { manifest, text } = get();
      expect(text).not.toMatch(/"(workspace|catalog):/);
      for (const [dep, range] of Object.entries({ ...manifest.dependencies, ...manifest.peerDependencies })) {
        const sibling = sources.find((s) => s.manifest.name === dep);
        if (sibling) expect(range, dep).toBe(`^${sibling.manifest.version}`);
      }
    });

    it('exports types and import from files in the tarball, with no workspace-only condition', () => {
      const { manifest, text, entries } = get();
      expect(text).not.toContain('@berth/source');
      expect(manifest.exports && Object.keys(manifest.exports)).toEqual(['.']);
      expect(Object.keys(manifest.exports!['.']!).sort()).toEqual(['import', 'types']);
      for (const target of [...Object.values(manifest.exports!['.']!), manifest.main!, manifest.types!]) expect(entries, target).toContain(file(target));
      for (const bin of Object.values(manifest.bin ?? {})) expect(entries, bin).toContain(file(bin));
    });

    it('has a version and a license, ships its README, and no build cache or sources', () => {
      const { manifest, entries } = get();
      expect(manifest.version).toMatch(/^\d+\.\d+\.\d+/);
      expect(manifest.license).toBeTruthy();
      expect(entries).toContain('README.md');
      expect([...entries].filter((e) => e.endsWith('.tsbuildinfo') || e.startsWith('src/') || e.startsWith('test/'))).toEqual([]);
    });

    it('takes tsyringe and tapable as peers unless it hosts the engine', () => {
      const { manifest } = get();
      const deps = Object.keys(manifest.dependencies ?? {});
      const usesCore = deps.includes('@berth/core') || Object.keys(manifest.peerDependencies ?? {}).includes('@berth/core') || name === '@berth/core';
      for (const lib of SHARED) {
        if (HOSTS.has(name)) continue;
        expect(deps, lib).not.toContain(lib);
        if (usesCore) expect(manifest.peerDependencies ?? {}, lib).toHaveProperty(lib);
      }
    });
  });
});
