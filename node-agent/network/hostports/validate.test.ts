import assert from 'node:assert/strict';
import { NetworkError, NetworkReason } from '../status.js';
import { validatePorts, type PortRule } from './validate.js';

type Spec = Parameters<typeof validatePorts>[0];

describe('unit: published port validation', () => {
  const accepted: { name: string; spec: Spec; want: PortRule[] }[] = [
    { name: 'no ports', spec: [], want: [] },
    {
      name: 'no protocol (input that did not pass the schema) is TCP, no hostIP means every address',
      spec: [{ hostPort: 8080, containerPort: 80 } as Spec[number]],
      want: [{ hostIP: undefined, hostPort: 8080, containerPort: 80, protocol: 'TCP' }],
    },
    {
      name: 'hostIP 0.0.0.0 and empty mean every address',
      spec: [
        { hostPort: 8080, containerPort: 80, protocol: 'TCP', hostIP: '0.0.0.0' },
        { hostPort: 8081, containerPort: 80, protocol: 'TCP', hostIP: '' },
      ],
      want: [
        { hostIP: undefined, hostPort: 8080, containerPort: 80, protocol: 'TCP' },
        { hostIP: undefined, hostPort: 8081, containerPort: 80, protocol: 'TCP' },
      ],
    },
    {
      name: 'an IPv4 hostIP and the name are kept',
      spec: [{ name: 'dns', hostPort: 5353, containerPort: 53, protocol: 'UDP', hostIP: '192.0.2.2' }],
      want: [{ name: 'dns', hostIP: '192.0.2.2', hostPort: 5353, containerPort: 53, protocol: 'UDP' }],
    },
    {
      name: 'one hostPort on TCP and UDP is two ports',
      spec: [
        { hostPort: 53, containerPort: 53, protocol: 'TCP' },
        { hostPort: 53, containerPort: 53, protocol: 'UDP' },
      ],
      want: [
        { hostIP: undefined, hostPort: 53, containerPort: 53, protocol: 'TCP' },
        { hostIP: undefined, hostPort: 53, containerPort: 53, protocol: 'UDP' },
      ],
    },
  ];
  for (const { name, spec, want } of accepted) {
    it(`accepts: ${name}`, () => assert.deepEqual(validatePorts(spec, 'ns/web'), want));
  }

  const refused: { name: string; spec: Spec; message: RegExp }[] = [
    {
      name: 'an IPv6 hostIP',
      spec: [{ hostPort: 8080, containerPort: 80, protocol: 'TCP', hostIP: '::1' }],
      message: /hostIP ::1 is not an IPv4 address/,
    },
    {
      name: 'a hostIP that is no address',
      spec: [{ hostPort: 8080, containerPort: 80, protocol: 'TCP', hostIP: 'localhost' }],
      message: /hostIP localhost is not an IPv4 address/,
    },
    {
      name: 'the same hostPort and protocol twice, even on different hostIPs',
      spec: [
        { hostPort: 8080, containerPort: 80, protocol: 'TCP', hostIP: '192.0.2.2' },
        { hostPort: 8080, containerPort: 81, protocol: 'TCP', hostIP: '192.0.2.3' },
      ],
      message: /hostPort 8080\/TCP is listed twice/,
    },
  ];
  for (const { name, spec, message } of refused) {
    it(`refuses: ${name}`, () =>
      assert.throws(
        () => validatePorts(spec, 'ns/web'),
        (err: unknown) =>
          err instanceof NetworkError &&
          err.reason === NetworkReason.InvalidNetworkSpec &&
          err.step === 'publish ports' &&
          err.sandbox === 'ns/web' &&
          message.test(err.message),
      ));
  }
});
