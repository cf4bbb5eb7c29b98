/**
 * The Docker Engine API swagger (shared/specs, found by @berth/testing's specsDir() at test
 * time) compiled with ajv: `validate('SystemInfo', body)` checks a response body against
 * a definition. Swagger 2.0's `x-nullable: true` becomes "or null".
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import YAML from 'yaml';
import { specsDir } from '@berth/testing';

export const swaggerPath = path.join(specsDir(), 'docker-engine-api/swagger.yaml');

function nullable(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(nullable);
  if (typeof node !== 'object' || node === null) return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
    if (k === 'example' || k === 'x-go-name' || k === 'description') continue;
    out[k] = nullable(v);
  }
  if (out['x-nullable'] === true) {
    if (typeof out.type === 'string') out.type = [out.type, 'null'];
    else if (out.$ref) return { anyOf: [{ $ref: out.$ref }, { type: 'null' }] };
    else if (out.allOf) return { anyOf: [{ allOf: out.allOf }, { type: 'null' }] };
  }
  return out;
}

let cached: { ajv: Ajv; spec: any } | null = null;

export function swagger(): { ajv: Ajv; spec: any } {
  if (cached) return cached;
  const spec = YAML.parse(readFileSync(swaggerPath, 'utf8'));
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  ajv.addSchema({ $id: 'swagger.json', definitions: nullable(spec.definitions) });
  cached = { ajv, spec };
  return cached;
}

/** Validate `value` against `#/definitions/<name>`; returns ajv's errors as text ('' when valid). */
export function validateDefinition(name: string, value: unknown): string {
  const { ajv } = swagger();
  const v = ajv.getSchema(`swagger.json#/definitions/${name}`);
  if (!v) throw new Error(`no swagger definition ${name}`);
  return v(value) ? '' : ajv.errorsText(v.errors, { separator: '\n' });
}

/** Validate against an inline response schema of a path operation (e.g. GET /containers/json 200). */
export function validateResponse(route: string, method: string, status: number, value: unknown): string {
  const { ajv, spec } = swagger();
  const op = spec.paths?.[route]?.[method.toLowerCase()];
  if (!op) throw new Error(`no swagger operation ${method} ${route}`);
  const schema = op.responses?.[String(status)]?.schema;
  if (!schema) throw new Error(`no schema for ${method} ${route} ${status}`);
  const fixed = JSON.parse(JSON.stringify(nullable(schema)).replaceAll('"#/definitions/', '"swagger.json#/definitions/'));
  const v = ajv.compile(fixed);
  return v(value) ? '' : ajv.errorsText(v.errors, { separator: '\n' });
}

/** Status codes the swagger documents for an operation. */
export function documentedStatuses(route: string, method: string): number[] {
  const { spec } = swagger();
  const op = spec.paths?.[route]?.[method.toLowerCase()];
  if (!op) throw new Error(`no swagger operation ${method} ${route}`);
  return Object.keys(op.responses).map(Number);
}
