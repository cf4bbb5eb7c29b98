/** Validates API answers against definitions of the Docker Engine API swagger in ../shared/specs. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import YAML from 'yaml';

const CANDIDATES = [path.resolve(import.meta.dirname, '../../../../shared/specs/docker-engine-api/swagger.yaml'), '/work/shared/specs/docker-engine-api/swagger.yaml'];
let ajv: Ajv | null = null;

function load(): Ajv {
  if (ajv) return ajv;
  const file = CANDIDATES.find((f) => existsSync(f));
  if (!file) throw new Error('Docker Engine API swagger not found (../shared/specs/docker-engine-api/swagger.yaml)');
  const doc = YAML.parse(readFileSync(file, 'utf8')) as { definitions: Record<string, unknown> };
  const a = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  a.addSchema({ $id: 'swagger', definitions: doc.definitions });
  ajv = a;
  return a;
}

export function expectSwagger(definition: string, data: unknown): void {
  const v = load().compile({ $ref: `swagger#/definitions/${definition}` });
  if (!v(data)) throw new Error(`${definition}: ${JSON.stringify(v.errors, null, 1)}`);
}
