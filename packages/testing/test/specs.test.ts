/** The spec loaders of @berth/testing: they accept what the specs allow and refuse what they do not. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { documentedStatuses, findSpecs, ociSchemaErrors, specsCandidates, validateDefinition, validateResponse } from '../src/specs.js';

describe('finding the specs', () => {
  it('looks in BERTH_SPECS_DIR first and in the git-ignored .specs/ of fetch-specs.sh last', () => {
    const saved = process.env.BERTH_SPECS_DIR;
    process.env.BERTH_SPECS_DIR = '/nowhere/specs';
    try {
      const c = specsCandidates();
      expect(c[0]).toBe('/nowhere/specs');
      expect(c.at(-1)).toBe(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../.specs'));
    } finally {
      if (saved === undefined) delete process.env.BERTH_SPECS_DIR;
      else process.env.BERTH_SPECS_DIR = saved;
    }
  });

  it('missing: skips the test with the reason outside CI, fails in CI', () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-specs-'));
    try {
      const skipped: string[] = [];
      const skip = (r: string) => void skipped.push(r);
      expect(() => findSpecs([empty], {}, skip)).toThrow(/reference specs are not in/);
      expect(skipped).toEqual([expect.stringContaining('run scripts/fetch-specs.sh')]);
      skipped.length = 0;
      expect(() => findSpecs([empty], { CI: 'true' }, skip)).toThrow(/CI requires them/);
      expect(skipped).toEqual([]);
      fs.mkdirSync(path.join(empty, 'docker-engine-api'));
      fs.writeFileSync(path.join(empty, 'docker-engine-api/swagger.yaml'), 'swagger: "2.0"\n');
      expect(findSpecs(['/nowhere', empty], { CI: 'true' }, skip)).toBe(empty);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe('Docker Engine API swagger', () => {
  it('validates definitions, with x-nullable as "or null"', () => {
    expect(validateDefinition('ContainerState', { Status: 'running', Pid: 42, Health: null })).toBe('');
    expect(validateDefinition('ContainerState', { Status: 'running', Pid: 'forty-two' })).toMatch(/Pid/);
    expect(validateDefinition('ContainerState', { Status: 'sleeping' })).toMatch(/Status/);
    expect(() => validateDefinition('NoSuchDefinition', {})).toThrow(/no swagger definition/);
  });

  it('validates the response schema of an operation and lists its statuses', () => {
    expect(validateResponse('/containers/create', 'post', 201, { Id: 'x', Warnings: [] })).toBe('');
    expect(validateResponse('/containers/create', 'post', 201, { Warnings: [] })).toMatch(/Id/);
    expect(documentedStatuses('/containers/{id}/start', 'post')).toEqual(expect.arrayContaining([204, 304, 404, 500]));
  });
});

describe('OCI schemas', () => {
  it('validates a runtime config (refs across the runtime-spec files resolve)', () => {
    const spec = { ociVersion: '1.2.0', root: { path: 'rootfs' }, linux: { namespaces: [{ type: 'pid' }] } };
    expect(ociSchemaErrors('oci-runtime-spec/config-schema.json', spec)).toBe('');
    expect(ociSchemaErrors('oci-runtime-spec/config-schema.json', { ...spec, linux: { namespaces: [{ type: 'nope' }] } })).not.toBe('');
  });

  it('validates image-spec documents (refs to the descriptor schema resolve)', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: 2 }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: 3 }] };
    expect(ociSchemaErrors('oci-image-spec/image-manifest-schema.json', manifest)).toBe('');
    expect(ociSchemaErrors('oci-image-spec/image-manifest-schema.json', { ...manifest, config: { ...manifest.config, digest: 'not-a-digest' } })).not.toBe('');
    expect(() => ociSchemaErrors('oci-image-spec/no-such-schema.json', {})).toThrow(/no OCI schema/);
  });
});
