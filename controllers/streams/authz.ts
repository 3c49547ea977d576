import { SandpitError } from '../../lib/errors.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { accessFor, refusalMessage, type StreamRequest } from './request.js';

interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: UserInfo;
  error?: string;
}

interface SubjectAccessReviewStatus {
  allowed?: boolean;
  denied?: boolean;
  reason?: string;
}

/**
 * Who may not do what, with the HTTP status to answer and its reason; the
 * caller reads `detail`, the sentence without the step, as the refusal's text.
 */
export class AccessDenied extends SandpitError {
  declare readonly reason: 'Unauthorized' | 'Forbidden';
  constructor(
    readonly status: 401 | 403,
    message: string,
  ) {
    super({ step: 'authorize stream', message, reason: status === 401 ? 'Unauthorized' : 'Forbidden' });
    this.name = 'AccessDenied';
  }
}

/**
 * Kubernetes decides: the caller's token is checked with a TokenReview and
 * the action with a SubjectAccessReview for the user it names, so a
 * RoleBinding grants sandboxes/exec exactly as it grants pods/exec.
 * Returns the username for the audit log line.
 */
export async function authorizeStream(
  client: KubeClient,
  token: string | undefined,
  req: StreamRequest,
): Promise<string> {
  if (!token)
    throw new AccessDenied(
      401,
      'no bearer token: kubectl sandpit sends the token of your kubeconfig user (client-certificate users need a token, see the README)',
    );
  const review = await client.create<{ status?: TokenReviewStatus }>('/apis/authentication.k8s.io/v1/tokenreviews', {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenReview',
    spec: { token },
  });
  const st = review.status ?? {};
  if (!st.authenticated || !st.user?.username)
    throw new AccessDenied(401, `the token was not accepted by the API server${st.error ? `: ${st.error}` : ''}`);
  const user = st.user;
  const { verb, subresource } = accessFor(req.action);
  const sar = await client.create<{ status?: SubjectAccessReviewStatus }>(
    '/apis/authorization.k8s.io/v1/subjectaccessreviews',
    {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: user.username,
        ...(user.uid ? { uid: user.uid } : {}),
        groups: user.groups ?? [],
        ...(user.extra ? { extra: user.extra } : {}),
        resourceAttributes: {
          namespace: req.namespace,
          verb,
          group: 'sandpit.dev',
          resource: 'sandboxes',
          ...(subresource ? { subresource } : {}),
          name: req.name,
        },
      },
    },
  );
  if (!sar.status?.allowed)
    throw new AccessDenied(403, refusalMessage(user.username!, req.action, req.namespace, sar.status?.reason));
  return user.username!;
}
