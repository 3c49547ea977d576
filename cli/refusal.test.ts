import assert from 'node:assert/strict';
import { userMessage } from './errors.js';
import { refusalError } from './refusal.js';

const status = (code: number, reason: string, message: string, details?: object) =>
  JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message, details });

describe('unit: kubectl-sandpit refused streams', () => {
  const cases: { name: string; status: number; body: string; reason: string; text: string }[] = [
    {
      name: 'the service proxy has no endpoint: the controller streams are not served',
      status: 503,
      body: status(503, 'ServiceUnavailable', 'no endpoints available for service "sandpit-controller"'),
      reason: 'ServiceUnavailable',
      text: `the sandpit controller's streams endpoint is not running in namespace sandpit-system (no endpoints available for service "sandpit-controller")`,
    },
    {
      name: 'the API server forbids the proxy itself: the role to ask for',
      status: 403,
      body: status(
        403,
        'Forbidden',
        'services "https:sandpit-controller:streams" is forbidden: User "bob" cannot get resource "services/proxy" in API group "" in the namespace "sandpit-system"',
        { name: 'https:sandpit-controller:streams', kind: 'services' },
      ),
      reason: 'Forbidden',
      text: 'the API server refused the proxy to the sandpit controller: services "https:sandpit-controller:streams" is forbidden: User "bob" cannot get resource "services/proxy" in API group "" in the namespace "sandpit-system" (ask for the sandpit-streams-client role)',
    },
    {
      name: "the controller's own refusal, even when it names services/proxy, as it said it",
      status: 403,
      body: JSON.stringify({
        reason: 'Forbidden',
        message: 'User "bob" cannot create sandboxes/exec (services/proxy)',
      }),
      reason: 'Forbidden',
      text: 'Error from server (Forbidden): User "bob" cannot create sandboxes/exec (services/proxy)',
    },
    {
      name: 'a 503 of the controller (not a Status) as it said it',
      status: 503,
      body: JSON.stringify({ reason: 'AgentUnreachable', message: 'no endpoints available' }),
      reason: 'AgentUnreachable',
      text: 'Error from server (AgentUnreachable): no endpoints available',
    },
    {
      name: 'plain text, with the HTTP status as the reason',
      status: 502,
      body: 'bad gateway\n',
      reason: '502',
      text: 'Error from server (502): bad gateway',
    },
    { name: 'an empty body', status: 500, body: '', reason: '500', text: 'Error from server (500): HTTP 500' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const err = refusalError(c.status, c.body, 'sandpit-system');
      assert.equal(err.reason, c.reason);
      assert.equal(userMessage(err), c.text);
    });
  }
});
