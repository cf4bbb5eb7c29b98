/**
 * What a default berthd does not use until asked is not imported at start: no module of the
 * daemon imports these packages statically (an `import type` is erased; `await import()` at
 * the first use is the way). Each costs resident memory for as long as the daemon runs
 * (docs/benchmarks.md, "RSS with 1,000 created").
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src');

/** Used only by POST /build (routes/build.ts imports it at the first build). */
const LAZY = ['@berth/builder'];

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

/** The packages a module imports statically (import … from / export … from / bare import), type-only imports left out. */
function staticImports(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm)) if (!m[2]) out.push(m[3]!);
  return out;
}

describe('berthd start-up imports', () => {
  it('the parser sees static imports and leaves type-only ones out', () => {
    expect(staticImports("import { A, type B } from '@x/a';\nimport type { C } from '@x/c';\nexport * from './d.js';\nimport 'reflect-metadata';\nconst e = await import('@x/e');")).toEqual(['@x/a', './d.js', 'reflect-metadata']);
  });

  it.each(LAZY)('no module of the daemon imports %s statically', (pkg) => {
    const offenders = sources(src).filter((f) => staticImports(fs.readFileSync(f, 'utf8')).includes(pkg));
    expect(offenders.map((f) => path.relative(src, f))).toEqual([]);
  });
});
