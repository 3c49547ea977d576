import { stopSharedControlPlane } from './harness/control-plane.js';

/**
 * Mocha root hooks for every tier: whatever shared infrastructure a test file
 * started is stopped once, after the last test, even when tests failed.
 */
export const mochaHooks = {
  async afterAll(this: unknown): Promise<void> {
    await stopSharedControlPlane();
  },
};
