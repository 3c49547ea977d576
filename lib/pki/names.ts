/*
 * Names of the certificate objects that the controller, the
 * agent and the Helm chart must agree on. Renaming one breaks enrolment of
 * agents already running (they look for the bundle and the signer by name),
 * and the chart's RBAC grants exactly these.
 */

/** The Secret that holds the in-cluster CA's certificate and key (controller namespace). */
export const CA_SECRET = 'sandpit-ca';
/** The ConfigMap where the controller publishes the CA certificate, never the key, for agents to trust. */
export const CA_BUNDLE_CONFIGMAP = 'sandpit-ca-bundle';
/** The signerName of agent serving-certificate requests; the controller approves and signs only these. */
export const AGENT_SIGNER = 'sandpit.dev/agent-serving';
