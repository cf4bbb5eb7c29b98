/** Validates API answers against definitions of the Docker Engine API swagger in ../shared/specs. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import YAML from 'yaml';
import { specsDir } from '@berth/testing';

let ajv: Ajv | null = null;

function load(): Ajv {
  if (ajv) return ajv;
  const file = path.join(specsDir(), 'docker-engine-api/swagger.yaml');
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
