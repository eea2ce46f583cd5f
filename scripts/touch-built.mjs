// The end of `npm run build`: stamps dist/ as built from the sources as they are now. Make
// (`make build`) and the tests (test/ws/process.ts) compare sources with this stamp, not with
// the outputs, which an incremental build leaves untouched when they did not change.
import { writeFileSync } from 'node:fs';

writeFileSync(new URL('../dist/.built', import.meta.url), '');
