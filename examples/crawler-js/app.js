// crawler: fetches a list of pages at once and reports each one's status and <title>.
//
// Input:  {"urls": [U, ...], "concurrency": C, "retries": R}, C and R optional.
// Output: {"fetched": n, "failed": m, "pages": [{"url", "status", "title"} or {"url", "error"}, ...]},
//         pages in the order of `urls`; a page whose fetch failed or answered 4xx/5xx has an
//         `error` instead of a title.
// One session sends every request, so cookies a site sets go with its other pages. `fetchAll`
// hands them all to the host, which fetches them together, at most C at a time (its default if
// C is not given) and within the manifest's politeness limits; the task waits without holding a
// thread. Each page is tried up to R times (connection errors, 429, 502-504).
import { task, Session, request, retry, title, log, progress, emit, InvalidInput } from './ignareo.js';

const USAGE = 'expected {"urls": ["https://...", ...], "concurrency": C, "retries": R}';

export const run = task((input) => {
  const urls = input?.urls;
  if (!Array.isArray(urls) || !urls.every((url) => typeof url === 'string')) throw new InvalidInput(USAGE);
  const concurrency = input.concurrency ?? undefined;
  if (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency > 0)) {
    throw new InvalidInput(`concurrency must be a whole number above 0; ${USAGE}`);
  }
  const policy = input.retries > 1 ? retry({ attempts: input.retries }) : undefined;

  const session = new Session().setHeader('user-agent', 'ignareo-crawler-js/0.1');
  const results = session.fetchAll(urls.map((url) => request(url, { retry: policy })), concurrency);
  const pages = results.map((result, i) => {
    try {
      if (result instanceof Error) throw result;
      result.raiseForStatus();
      return { url: urls[i], status: result.status, title: title(result.text()) };
    } catch (error) {
      log(`${urls[i]}: ${error.message}`, 'warn');
      return { url: urls[i], error: error.message };
    }
  });

  const failed = pages.filter((page) => page.error !== undefined).length;
  const fetched = pages.length - failed;
  progress(pages.length, urls.length);
  emit('crawled', { fetched, failed });
  return { fetched, failed, pages };
});
