/** Validates JSON against the OCI image-spec schemas in ../shared/specs (draft-04, loaded into ajv 8). */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { specsDir } from '@berth/testing';


function strip(node: unknown, top: boolean): unknown {
  if (Array.isArray(node)) return node.map((n) => strip(n, false));
  if (!node || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$schema') continue;
    if (k === 'id' && typeof v === 'string') continue;
    out[k] = k === 'properties' || k === 'definitions' || k === 'patternProperties'
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([pk, pv]) => [pk, strip(pv, false)]))
      : strip(v, false);
  }
  void top;
  return out;
}

let ajv: Ajv | null = null;
function load(): Ajv {
  if (ajv) return ajv;
  const specDir = path.join(specsDir(), 'oci-image-spec');
  const a = new Ajv({ strict: false, allErrors: true });
  const addFormats = (addFormatsModule as unknown as { default?: (a: Ajv) => void }).default ?? (addFormatsModule as unknown as (a: Ajv) => void);
  addFormats(a);
  for (const f of readdirSync(specDir).filter((n) => n.endsWith('.json'))) {
    const schema = strip(JSON.parse(readFileSync(path.join(specDir, f), 'utf8')), true) as Record<string, unknown>;
    a.addSchema({ ...schema, $id: `https://oci.schema.test/${f}` });
  }
  ajv = a;
  return a;
}

export function ociValidator(file: 'image-manifest-schema.json' | 'image-index-schema.json' | 'config-schema.json' | 'image-layout-schema.json'): ValidateFunction {
  const fn = load().getSchema(`https://oci.schema.test/${file}`);
  if (!fn) throw new Error(`schema ${file} not loaded`);
  return fn;
}

export function expectValid(file: Parameters<typeof ociValidator>[0], data: unknown): void {
  const v = ociValidator(file);
  if (!v(data)) throw new Error(`${file}: ${JSON.stringify(v.errors, null, 1)}`);
}
