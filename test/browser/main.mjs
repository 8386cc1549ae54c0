// Entry point of the real-browser tests (see run.sh).
//   BROWSER_ONLY=regex  runs only the tests whose name matches
import { runAll } from '../e2e/lib/harness.mjs';
import { launch, shutdown } from './lib/browser.mjs';
import './tests/helper.mjs';
import './tests/nginx.mjs';
import './tests/demo.mjs';
import './tests/readme.mjs';

await launch();
let failed = 1;
let passed = 0;
try {
  ({ passed, failed } = await runAll({ only: process.env.BROWSER_ONLY || '', label: '', resultsFile: process.env.E2E_RESULTS || '' }));
} finally {
  await shutdown();
}
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
