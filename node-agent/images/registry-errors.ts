import { ImageError } from './errors.js';
import type { RegistryResponse } from './registry-http.js';

/*
 * What a registry's refusal means for the sandbox: a 404 is a wrong name or
 * tag (ManifestUnknown), a 403 is a pull secret that does not reach far
 * enough (Unauthorized), anything else a failed pull. The registry's own error
 * codes (the distribution spec's JSON error document) go into the message.
 */

/** The codes of a distribution-spec error document, or '' when the body is not one. */
export function registryErrorCodes(body: string): string {
  try {
    const j = JSON.parse(body.slice(0, 65536)) as { errors?: { code?: string; message?: string }[] };
    return (j.errors ?? []).map((e) => `${e.code}: ${e.message}`).join('; ');
  } catch {
    return ''; // body is not the JSON error document
  }
}

/** The ImageError for a registry answer of HTTP `status` with `body`, about `what` ("manifest a/b:1", "blob sha256:…"). */
export function registryError(status: number, body: string, what: string): ImageError {
  const codes = registryErrorCodes(body);
  const detail = codes ? ` (${codes})` : '';
  if (status === 404) {
    return new ImageError({
      reason: 'ManifestUnknown',
      step: 'pull',
      message: `${what} not found${detail}`,
      hint: 'check the image name and tag',
      retryable: false,
    });
  }
  if (status === 403) {
    return new ImageError({
      reason: 'Unauthorized',
      step: 'pull',
      message: `${what}: access denied${detail}`,
      retryable: false,
    });
  }
  return new ImageError({ reason: 'ErrImagePull', step: 'pull', message: `${what}: HTTP ${status}${detail}` });
}

/** Reads the body of a refusal and says what it means. */
export async function errorFor(r: RegistryResponse, what: string): Promise<ImageError> {
  let body = '';
  try {
    body = await r.body.text();
  } catch {
    /* the body could not be read; the status says enough */
  }
  return registryError(r.status, body, what);
}
