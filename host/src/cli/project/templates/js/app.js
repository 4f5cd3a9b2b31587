// {{name}}: an ignareo task. Input `{"url": "https://..."}`; output the page's status and
// `<title>`, `{"status": 200, "title": "..."}`. Its manifest (`ignareo.toml`) must grant the
// page's host. `./ignareo.js`, the SDK, is put beside this file when `ignareo build` builds it.
import { task, Session, title, log, InvalidInput } from './ignareo.js';

export const run = task((input) => {
  if (typeof input?.url !== 'string') throw new InvalidInput('expected {"url": "..."}');
  // A session keeps the cookies a site sets from one request to the next.
  const session = new Session();
  const page = session.get(input.url, { timeoutMs: 30000 }).raiseForStatus();
  const text = page.text();
  log(`${page.url} answered ${text.length} characters`);
  return { status: page.status, title: title(text) };
});
