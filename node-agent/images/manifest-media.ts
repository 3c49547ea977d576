import { ImageError } from './errors.js';

/** The manifest media types pulled: OCI and Docker schema 2, each as an image or an index/list. */
export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

/**
 * The media type of a manifest document: Content-Type and the document's own
 * mediaType must agree (CVE-2021-41190); a document with both "manifests" and
 * "layers" is refused as ambiguous.
 */
export function manifestMediaType(contentType: string, body: Buffer): string {
  let doc: { mediaType?: string; manifests?: unknown; layers?: unknown; schemaVersion?: number };
  try {
    doc = JSON.parse(body.toString('utf8')) as typeof doc;
  } catch {
    throw new ImageError({
      reason: 'ErrImagePull',
      step: 'parse manifest',
      message: 'manifest is not JSON',
      retryable: false,
    });
  }
  if (doc.manifests !== undefined && doc.layers !== undefined) {
    throw new ImageError({
      reason: 'ErrImagePull',
      step: 'parse manifest',
      message: 'ambiguous document with both manifests and layers',
      retryable: false,
    });
  }
  const known = Object.values(MEDIA) as string[];
  const ct = known.includes(contentType) ? contentType : undefined;
  if (doc.mediaType && ct && doc.mediaType !== ct) {
    throw new ImageError({
      reason: 'ErrImagePull',
      step: 'parse manifest',
      message: `mediaType ${doc.mediaType} does not match Content-Type ${ct}`,
      retryable: false,
    });
  }
  const mt =
    doc.mediaType ??
    ct ??
    (doc.manifests !== undefined ? MEDIA.ociIndex : doc.layers !== undefined ? MEDIA.ociManifest : undefined);
  if (!mt || !known.includes(mt)) {
    throw new ImageError({
      reason: 'ErrImagePull',
      step: 'parse manifest',
      message: `unsupported manifest type ${mt ?? contentType}${doc.schemaVersion === 1 ? ' (Docker schema 1 is not supported)' : ''}`,
      retryable: false,
    });
  }
  if ((mt === MEDIA.ociIndex || mt === MEDIA.dockerList) !== (doc.manifests !== undefined)) {
    throw new ImageError({
      reason: 'ErrImagePull',
      step: 'parse manifest',
      message: `document does not have the shape of ${mt}`,
      retryable: false,
    });
  }
  return mt;
}
