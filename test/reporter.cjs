// Mocha's spec reporter plus one closing line in the plain form CI reads:
// "N passed, N failed, N skipped". Pending (skipped) tests are counted, never hidden.
'use strict';
const Mocha = require('mocha');

class SandpitReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const s = runner.stats;
      process.stdout.write(`\n${s.passes} passed, ${s.failures} failed, ${s.pending} skipped\n`);
    });
  }
}
module.exports = SandpitReporter;
