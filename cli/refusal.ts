import { CliError } from './errors.js';

/** The parts of a refusal body we decide on: the API server's metav1.Status, or the controller's `{reason, message}`. */
interface RefusalBody {
  kind?: string;
  reason?: string;
  message?: string;
  details?: { kind?: string };
}

/**
 * A refused stream upgrade in words. The API server's own refusals are a
 * metav1.Status (`kind: Status`); the controller's are not, so its answers
 * reach the user as they are. Two of the API server's get a sentence that
 * says where to look: ServiceUnavailable (the service proxy found no
 * endpoint or port to send to: the controller's streams are not served) and
 * Forbidden on `services` (the user may not use the proxy at all).
 */
export function refusalError(status: number, body: string, controllerNamespace: string): CliError {
  let parsed: RefusalBody = {};
  try {
    parsed = JSON.parse(body) as RefusalBody;
  } catch {
    /* plain text */
  }
  const msg = parsed.message ?? (body.trim() || `HTTP ${status}`);
  const fromApiServer = parsed.kind === 'Status';
  if (fromApiServer && status === 503 && parsed.reason === 'ServiceUnavailable')
    return new CliError(
      'open stream',
      `the sandpit controller's streams endpoint is not running in namespace ${controllerNamespace} (${msg})`,
      { reason: parsed.reason },
    );
  if (fromApiServer && status === 403 && parsed.reason === 'Forbidden' && parsed.details?.kind === 'services')
    return new CliError('open stream', `the API server refused the proxy to the sandpit controller: ${msg}`, {
      reason: parsed.reason,
      hint: 'ask for the sandpit-streams-client role',
    });
  const reason = parsed.reason ?? String(status);
  return new CliError('open stream', `Error from server (${reason}): ${msg}`, { reason });
}
