// Entry point: runs every end-to-end test in a fixed order against the
// bridge binary and database named by run.sh (see lib/env.mjs).
//   E2E_ONLY=regex  runs only the tests whose name matches
//   E2E_LABEL=text  prefixes the test names (e.g. "asan")
import { runAll } from './lib/harness.mjs';
import './tests/basics.mjs';
import './tests/replay.mjs';
import './tests/matching.mjs';
import './tests/multiline.mjs';
import './tests/reset.mjs';
import './tests/close.mjs';
import './tests/subchange.mjs';
import './tests/jobs.mjs';
import './tests/errors.mjs';
import './tests/http.mjs';
import './tests/daemon.mjs';
import './tests/flow.mjs';
import './tests/database.mjs';
import './tests/liveness.mjs';
import './tests/shutdown.mjs';

const { failed } = await runAll({
  only: process.env.E2E_ONLY || '',
  label: process.env.E2E_LABEL || '',
  resultsFile: process.env.E2E_RESULTS || '',
});
process.exit(failed ? 1 : 0);
