/*
 * Image references normalised the way Docker does it, so that "busybox",
 * "library/busybox" and "docker.io/library/busybox:latest" share one store entry.
 */
import { SandpitError } from '../../lib/errors.js';

export interface ImageReference {
  /** Registry host[:port] as written (docker.io for Docker Hub). */
  domain: string;
  /** Repository path, e.g. library/busybox. */
  path: string;
  tag: string | undefined;
  digest: string | undefined;
}

const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const PATH_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DOMAIN_RE =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$|^\[[0-9a-fA-F:.]+\](?::[0-9]+)?$/;
export const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/** A reference no registry would take: fixing spec.containers[].image is the only way on. */
export class InvalidReferenceError extends SandpitError {
  declare readonly reason: 'InvalidImageName';
  constructor(message: string) {
    super({ step: 'parse image reference', message, reason: 'InvalidImageName' });
    this.name = 'InvalidReferenceError';
  }
}

/** Parses and normalises a reference; throws InvalidReferenceError with the reason. */
export function parseReference(ref: string): ImageReference {
  if (ref.length === 0 || ref.length > 4096) throw new InvalidReferenceError('empty or oversized reference');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest))
      throw new InvalidReferenceError(`invalid digest ${JSON.stringify(digest)} (want sha256:<64 hex>)`);
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw new InvalidReferenceError(`invalid tag ${JSON.stringify(tag)}`);
  }
  let domain = 'docker.io';
  let path = rest;
  const first = rest.indexOf('/');
  if (first >= 0) {
    const head = rest.slice(0, first);
    if (head.includes('.') || head.includes(':') || head === 'localhost' || head !== head.toLowerCase()) {
      domain = head;
      path = rest.slice(first + 1);
    }
  }
  if (!DOMAIN_RE.test(domain)) throw new InvalidReferenceError(`invalid registry host ${JSON.stringify(domain)}`);
  if (domain === 'index.docker.io') domain = 'docker.io';
  if (domain === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  if (!PATH_RE.test(path)) {
    throw new InvalidReferenceError(
      `invalid repository name ${JSON.stringify(path)} (lowercase letters, digits, separators)`,
    );
  }
  if (path.length > 255) throw new InvalidReferenceError('repository name longer than 255 characters');
  if (!tag && !digest) tag = 'latest';
  return { domain, path, tag, digest };
}

/** docker.io/library/busybox:latest, or ...@sha256:... when pinned. */
export function formatReference(r: ImageReference): string {
  return `${r.domain}/${r.path}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** The host to talk to: Docker Hub's API lives on registry-1.docker.io. */
export function registryHost(r: ImageReference): string {
  return r.domain === 'docker.io' ? 'registry-1.docker.io' : r.domain;
}

/** Kubernetes' default pull policy: Always for :latest or untagged, else IfNotPresent. */
export function defaultPullPolicy(ref: string): 'Always' | 'IfNotPresent' {
  try {
    const r = parseReference(ref);
    if (r.digest) return 'IfNotPresent';
    return r.tag === 'latest' ? 'Always' : 'IfNotPresent';
  } catch {
    return 'IfNotPresent';
  }
}
