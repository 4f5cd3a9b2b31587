// `sleep`, in JavaScript: `{"ms": N}` → sleeps N ms on the host (no thread held) → `{"slept_ms": N}`.
import { task, sleep, InvalidInput } from '../../sdk-js/ignareo.js';

export const run = task((input) => {
  const ms = input?.ms;
  if (!Number.isInteger(ms) || ms < 0) throw new InvalidInput('expected {"ms": N}, N a whole number of milliseconds');
  sleep(ms);
  return { slept_ms: ms };
});
