/** The spec loaders of @berth/testing: they accept what the specs allow and refuse what they do not. */
import { describe, expect, it } from 'vitest';
import { documentedStatuses, ociSchemaErrors, validateDefinition, validateResponse } from '../src/specs.js';

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
