/**
 * The reference specs for tests, loaded once: the Docker Engine API swagger and the OCI
 * runtime and image JSON schemas, each compiled with ajv — the one loader every package's
 * tests use. `specsDir()` finds them: BERTH_SPECS_DIR if set, else `shared/specs` beside this
 * checkout, else beside the repository this checkout was cloned from (a fresh clone in a temp
 * dir finds the `shared/` beside its origin), else `.specs/` in the checkout, where
 * `scripts/fetch-specs.sh` downloads them (pinned upstream commits, sha256-checked; the script
 * looks in the same places). Where none has them, a test that needs them is skipped with that
 * reason — except in CI (`CI=true`), where they are required and the test fails. ajv,
 * ajv-formats and yaml are the workspace's dev dependencies (test-time only).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { TestRunner } from 'vitest';
import YAML from 'yaml';

let found: string | undefined;

/** Where specsDir() looks, in order. */
export function specsCandidates(): string[] {
  const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
  const candidates: string[] = [];
  if (process.env.BERTH_SPECS_DIR) candidates.push(path.resolve(process.env.BERTH_SPECS_DIR));
  candidates.push(path.resolve(repoRoot, '../shared/specs'));
  try {
    const origin = execFileSync('git', ['-C', repoRoot, 'config', '--get', 'remote.origin.url'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (path.isAbsolute(origin)) candidates.push(path.resolve(origin, '../shared/specs'));
  } catch {
    // not a git checkout, or no origin
  }
  candidates.push(path.resolve(repoRoot, '.specs'));
  return candidates;
}

/**
 * The first of `candidates` holding the specs. None does: in CI (`env.CI === 'true'`) an
 * Error; elsewhere `skip(reason)` first — by default it skips the running vitest test with the
 * reason (the rest of the test does not run) — then the Error where there is no test to skip.
 */
export function findSpecs(
  candidates: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
  skip: (reason: string) => void = (reason) => TestRunner.getCurrentTest()?.context.skip(reason),
): string {
  const dir = candidates.find((d) => existsSync(path.join(d, 'docker-engine-api/swagger.yaml')));
  if (dir) return dir;
  const reason = `the reference specs are not in ${candidates.join(', ')}: run scripts/fetch-specs.sh, put shared/specs beside the repository or set BERTH_SPECS_DIR`;
  if (env.CI !== 'true') skip(reason);
  throw new Error(env.CI === 'true' ? `${reason} (CI requires them)` : reason);
}

/** The specs folder (specsCandidates(), findSpecs()), found once. */
export function specsDir(): string {
  found ??= findSpecs(specsCandidates());
  return found;
}

// ---- Docker Engine API swagger -------------------------------------------------------------

/** Swagger 2.0 → JSON schema: `x-nullable: true` means "or null"; examples and prose dropped. */
function swaggerToJsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(swaggerToJsonSchema);
  if (typeof node !== 'object' || node === null) return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
    if (k === 'example' || k === 'x-go-name' || k === 'description') continue;
    out[k] = swaggerToJsonSchema(v);
  }
  if (out['x-nullable'] === true) {
    if (typeof out.type === 'string') out.type = [out.type, 'null'];
    else if (out.$ref) return { anyOf: [{ $ref: out.$ref }, { type: 'null' }] };
    else if (out.allOf) return { anyOf: [{ allOf: out.allOf }, { type: 'null' }] };
  }
  return out;
}

export interface SwaggerDoc {
  definitions: Record<string, unknown>;
  paths: Record<string, Record<string, { responses: Record<string, { schema?: unknown }> }>>;
}

let swaggerCache: { ajv: Ajv; spec: SwaggerDoc } | undefined;

/** The swagger (parsed) and an ajv holding its definitions as `swagger.json#/definitions/<name>`. */
export function swagger(): { ajv: Ajv; spec: SwaggerDoc } {
  if (swaggerCache) return swaggerCache;
  const spec = YAML.parse(readFileSync(path.join(specsDir(), 'docker-engine-api/swagger.yaml'), 'utf8')) as SwaggerDoc;
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  ajv.addSchema({ $id: 'swagger.json', definitions: swaggerToJsonSchema(spec.definitions) });
  swaggerCache = { ajv, spec };
  return swaggerCache;
}

function operation(route: string, method: string): { responses: Record<string, { schema?: unknown }> } {
  const op = swagger().spec.paths?.[route]?.[method.toLowerCase()];
  if (!op) throw new Error(`no swagger operation ${method} ${route}`);
  return op;
}

/** Validate `value` against `#/definitions/<name>`: ajv's errors as text, '' when valid. */
export function validateDefinition(name: string, value: unknown): string {
  const { ajv } = swagger();
  const v = ajv.getSchema(`swagger.json#/definitions/${name}`);
  if (!v) throw new Error(`no swagger definition ${name}`);
  return v(value) ? '' : ajv.errorsText(v.errors, { separator: '\n' });
}

/** Validate against the response schema of an operation (e.g. GET /containers/json 200): '' when valid. */
export function validateResponse(route: string, method: string, status: number, value: unknown): string {
  const schema = operation(route, method).responses?.[String(status)]?.schema;
  if (!schema) throw new Error(`no schema for ${method} ${route} ${status}`);
  const { ajv } = swagger();
  const v = ajv.compile(JSON.parse(JSON.stringify(swaggerToJsonSchema(schema)).replaceAll('"#/definitions/', '"swagger.json#/definitions/')));
  return v(value) ? '' : ajv.errorsText(v.errors, { separator: '\n' });
}

/** Status codes the swagger documents for an operation. */
export function documentedStatuses(route: string, method: string): number[] {
  return Object.keys(operation(route, method).responses).map(Number);
}

// ---- OCI runtime and image schemas ---------------------------------------------------------

/** A schema file of shared/specs' OCI folders, e.g. `oci-runtime-spec/config-schema.json`. */
export type OciSchemaFile = `${'oci-runtime-spec' | 'oci-image-spec'}/${string}.json`;

const OCI_BASE = 'https://oci.schema.test/';

/** Draft-04 → ajv 8: `$schema` and string `id`s go (each file gets an `$id` under OCI_BASE, so relative refs resolve); property names stay. */
function stripDraft4(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(stripDraft4);
  if (!node || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$schema' || (k === 'id' && typeof v === 'string')) continue;
    out[k] = k === 'properties' || k === 'definitions' || k === 'patternProperties'
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([pk, pv]) => [pk, stripDraft4(pv)]))
      : stripDraft4(v);
  }
  return out;
}

let ociAjv: Ajv | undefined;
function ociSchemas(): Ajv {
  if (ociAjv) return ociAjv;
  const ajv = new Ajv({ strict: false, allErrors: true });
  const addFormats = (addFormatsModule as unknown as { default?: (a: Ajv) => void }).default ?? (addFormatsModule as unknown as (a: Ajv) => void);
  addFormats(ajv);
  for (const folder of ['oci-runtime-spec', 'oci-image-spec']) {
    const dir = path.join(specsDir(), folder);
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
      const schema = stripDraft4(JSON.parse(readFileSync(path.join(dir, f), 'utf8'))) as Record<string, unknown>;
      ajv.addSchema({ ...schema, $id: `${OCI_BASE}${folder}/${f}` });
    }
  }
  ociAjv = ajv;
  return ajv;
}

/** The compiled validator of one OCI schema file. */
export function ociSchema(file: OciSchemaFile): ValidateFunction {
  const v = ociSchemas().getSchema(`${OCI_BASE}${file}`);
  if (!v) throw new Error(`no OCI schema ${file} in ${specsDir()}`);
  return v;
}

/** Validate `value` as its JSON text (what a runtime or registry reads) against an OCI schema: ajv's errors as text, '' when valid. */
export function ociSchemaErrors(file: OciSchemaFile, value: unknown): string {
  const v = ociSchema(file);
  return v(JSON.parse(JSON.stringify(value))) ? '' : ociSchemas().errorsText(v.errors, { separator: '\n' });
}
