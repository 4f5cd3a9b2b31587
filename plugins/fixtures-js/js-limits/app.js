// `js-limits`: a JavaScript task that reaches the host's limits on purpose. `{"kind": K, ...}`:
// `memory` holds `mib` MiB (default 1,024); `sleep` sleeps `ms` milliseconds; `fetch` GETs
// `url` (for a cancel or a deadline in the middle of a request).
import { task, sleep, get, InvalidInput } from '../../sdk-js/ignareo.js';

export const run = task((input) => {
  switch (input?.kind) {
    case 'memory': {
      const hoard = new Uint8Array((input.mib ?? 1024) * 1024 * 1024).fill(1);
      return { held: hoard.length };
    }
    case 'sleep':
      sleep(input.ms);
      return { slept_ms: input.ms };
    case 'fetch':
      return { status: get(input.url).status };
    default:
      throw new InvalidInput(`unknown kind ${input?.kind}: memory, sleep or fetch`);
  }
});
