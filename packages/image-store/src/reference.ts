/**
 * Image references normalized like Docker's (distribution/reference): `busybox` →
 * docker.io/library/busybox:latest, `localhost:5000/x@sha256:…`, familiar names for the API.
 */
import { InvalidParameterError } from '@berth/core';
import type { Digest } from './digest.js';

export const DEFAULT_DOMAIN = 'docker.io';
export const LEGACY_DOMAIN = 'index.docker.io';
export const DEFAULT_TAG = 'latest';

export interface Reference {
  /** Registry host (with port), e.g. docker.io, 127.0.0.1:5000. */
  domain: string;
  /** Repository path inside the registry, e.g. library/busybox. */
  path: string;
  tag?: string;
  digest?: Digest;
}

const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const ANY_DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$/;
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_RE =
  /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$/;
const HEX64_RE = /^[a-f0-9]{64}$/;

function invalid(detail?: string): InvalidParameterError {
  return new InvalidParameterError(detail ? `invalid reference format: ${detail}` : 'invalid reference format');
}

/** Splits a name into domain and path the way Docker does (splitDockerDomain). */
function splitDomain(name: string): { domain: string; path: string } {
  const i = name.indexOf('/');
  let domain: string;
  let path: string;
  if (i === -1 || (!/[.:]/.test(name.slice(0, i)) && name.slice(0, i) !== 'localhost' && name.slice(0, i).toLowerCase() === name.slice(0, i))) {
    domain = DEFAULT_DOMAIN;
    path = name;
  } else {
    domain = name.slice(0, i);
    path = name.slice(i + 1);
  }
  if (domain === LEGACY_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = `library/${path}`;
  return { domain, path };
}

/** Parses and normalizes a reference. Throws InvalidParameterError with Docker's wording. */
export function parseReference(input: string): Reference {
  if (!input || input.length > 255 + 128 + 80) throw invalid();
  if (HEX64_RE.test(input)) {
    throw new InvalidParameterError(`invalid repository name (${input}), cannot specify 64-byte hexadecimal strings`);
  }
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    const d = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!ANY_DIGEST_RE.test(d)) throw invalid();
    if (!DIGEST_RE.test(d)) throw new InvalidParameterError(`unsupported digest algorithm or format: ${d}`);
    digest = d as Digest;
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw invalid();
  }
  if (!rest) throw invalid();
  const { domain, path } = splitDomain(rest);
  if (!DOMAIN_RE.test(domain)) throw invalid();
  if (path.toLowerCase() !== path) throw invalid(`repository name (${path}) must be lowercase`);
  const comps = path.split('/');
  if (comps.some((c) => !PATH_COMPONENT_RE.test(c))) throw invalid();
  if (domain.length + 1 + path.length > 255) throw invalid('repository name must not be more than 255 characters');
  return { domain, path, ...(tag !== undefined ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** Adds the default tag when the reference has neither tag nor digest (TagNameOnly). */
export function withDefaultTag(ref: Reference): Reference {
  return ref.tag || ref.digest ? ref : { ...ref, tag: DEFAULT_TAG };
}

/** Parses like `docker pull`: a name without tag or digest gets `latest`. */
export function parseNormalizedNamed(input: string): Reference {
  return withDefaultTag(parseReference(input));
}

/** Fully qualified repository name: docker.io/library/busybox. */
export function repositoryName(ref: Pick<Reference, 'domain' | 'path'>): string {
  return `${ref.domain}/${ref.path}`;
}

/** Fully qualified string: docker.io/library/busybox:latest (tag and digest when both set). */
export function referenceString(ref: Reference): string {
  return `${repositoryName(ref)}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** Familiar repository name as the docker CLI shows it: busybox, foo/bar, 127.0.0.1:5000/x. */
export function familiarName(ref: Pick<Reference, 'domain' | 'path'>): string {
  if (ref.domain === DEFAULT_DOMAIN) {
    return ref.path.startsWith('library/') && ref.path.split('/').length === 2 ? ref.path.slice('library/'.length) : ref.path;
  }
  return `${ref.domain}/${ref.path}`;
}

/** Familiar string: busybox:latest, busybox@sha256:… */
export function familiarString(ref: Reference): string {
  return `${familiarName(ref)}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** Docker-style filter match of a reference against a pattern (`busybox`, `busybox:*`, `foo/*:1.*`; `*` never crosses `/`). */
export function matchReferencePattern(ref: Reference, pattern: string): boolean {
  const candidates = [familiarString(ref), familiarName(ref), referenceString(ref), repositoryName(ref)];
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
  if (!pattern.includes(':') && !pattern.includes('@')) {
    return re.test(familiarName(ref)) || re.test(repositoryName(ref));
  }
  return candidates.some((c) => re.test(c));
}
