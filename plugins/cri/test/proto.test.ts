/**
 * Wire compatibility of the plugin's own proto with the reference CRI api.proto (the specs
 * folder's cri/api.proto, k8s.io/cri-api runtime.v1): every service method the plugin declares
 * exists there with the same request/response types and streaming; every message and enum it
 * declares has the same fields (number, type, repeated/map) and values. Skips with the reason
 * where the specs folder is absent (CI requires it).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { specsDir } from '@berth/testing';
import { PROTO_FILE, loadCriPackage } from '../src/index.js';

function load(file: string): protobuf.Namespace {
  const root = new protobuf.Root().loadSync(file, { keepCase: true });
  root.resolveAll();
  return root.lookup('runtime.v1') as protobuf.Namespace;
}

/** Every type (message or enum, nested too) under a namespace, by full name. */
function typesOf(ns: protobuf.NamespaceBase, out = new Map<string, protobuf.Type | protobuf.Enum>()): Map<string, protobuf.Type | protobuf.Enum> {
  for (const n of ns.nestedArray) {
    if (n instanceof protobuf.Type || n instanceof protobuf.Enum) out.set(n.fullName, n);
    if (n instanceof protobuf.Namespace || n instanceof protobuf.Type) typesOf(n, out);
  }
  return out;
}

/** What goes on the wire for a field: its number, kind and type name. */
function wire(f: protobuf.Field): string {
  const type = f.resolvedType ? f.resolvedType.fullName : f.type;
  const kind = f instanceof protobuf.MapField ? `map<${f.keyType}>` : f.repeated ? 'repeated' : 'single';
  return `${f.id} ${kind} ${type}`;
}

describe('CRI proto', () => {
  it('loads as gRPC services (RuntimeService, ImageService)', () => {
    const pkg = loadCriPackage();
    expect(Object.keys(pkg.RuntimeService.service)).toContain('RunPodSandbox');
    expect(Object.keys(pkg.ImageService.service)).toContain('PullImage');
  });

  it('is wire-compatible with the reference runtime.v1 api.proto', () => {
    const refFile = join(specsDir(), 'cri', 'api.proto');
    expect(existsSync(refFile), `${refFile} missing from the specs folder`).toBe(true);
    const ours = load(PROTO_FILE);
    const ref = load(refFile);
    const problems: string[] = [];
    for (const svcName of ['RuntimeService', 'ImageService']) {
      const a = ours.lookupService(svcName);
      const b = ref.lookupService(svcName);
      for (const m of a.methodsArray) {
        const r = b.methods[m.name];
        if (!r) problems.push(`${svcName}.${m.name}: not in the reference`);
        else if (r.requestType !== m.requestType || r.responseType !== m.responseType || !!r.responseStream !== !!m.responseStream || !!r.requestStream !== !!m.requestStream) {
          problems.push(`${svcName}.${m.name}: signature differs`);
        }
      }
    }
    const refTypes = typesOf(ref);
    const ourTypes = typesOf(ours);
    expect(ourTypes.size).toBeGreaterThan(50);
    for (const [name, t] of ourTypes) {
      const r = refTypes.get(name);
      if (!r) {
        problems.push(`${name}: not in the reference`);
        continue;
      }
      if (t instanceof protobuf.Enum) {
        if (!(r instanceof protobuf.Enum)) problems.push(`${name}: enum vs message`);
        else for (const [k, v] of Object.entries(t.values)) if (r.values[k] !== v) problems.push(`${name}.${k}: ${v} vs ${r.values[k]}`);
        continue;
      }
      if (!(r instanceof protobuf.Type)) {
        problems.push(`${name}: message vs enum`);
        continue;
      }
      for (const f of t.fieldsArray) {
        const rf = r.fields[f.name];
        if (!rf) problems.push(`${name}.${f.name}: not in the reference`);
        else if (wire(f) !== wire(rf)) problems.push(`${name}.${f.name}: ${wire(f)} vs ${wire(rf)}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
