// Prints one plain closing line, "N passed, N failed, N skipped", after vitest's own summary, so that
// CI logs state the outcome in a form any reader (or log scraper) understands.

import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      let modFailed = 0;
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') modFailed++;
        else skipped++;
      }
      // a file that failed outside its tests (import error, a throwing beforeAll) counts as one failure
      if (mod.state() === 'failed' && modFailed === 0) modFailed = 1;
      failed += modFailed;
    }
    process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
