import assert from 'node:assert/strict';
import { defaultContainer } from './default-container.js';

const sbx = (names: string[], annotations?: Record<string, string>) => ({
  metadata: { annotations },
  spec: { containers: names.map((name) => ({ name })) },
});

describe('unit: defaultContainer: the container a request without -c means, as kubectl picks it', () => {
  it('takes the only container silently', () => {
    assert.deepEqual(defaultContainer(sbx(['main'])), { name: 'main' });
  });

  it('takes the first of several and says so, in kubectl words', () => {
    assert.deepEqual(defaultContainer(sbx(['web', 'side'])), {
      name: 'web',
      notice: 'Defaulted container "web" out of: web, side',
    });
  });

  it('honours the kubectl.kubernetes.io/default-container annotation, silently, when it names a container', () => {
    assert.deepEqual(defaultContainer(sbx(['web', 'side'], { 'kubectl.kubernetes.io/default-container': 'side' })), {
      name: 'side',
    });
    assert.deepEqual(
      defaultContainer(sbx(['web', 'side'], { 'kubectl.kubernetes.io/default-container': 'gone' })).name,
      'web',
    );
  });
});
