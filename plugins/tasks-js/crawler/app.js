// `crawler`, in JavaScript: `{"urls": [..], "concurrency": C, "retries": R}` → fetches every URL
// with `fetchAll`, at most C at a time, each tried up to R times (default 1: no retry) →
// `{"fetched": n, "failed": m, "titles": [..]}`, titles in input order, null where the fetch
// failed (an error, or a 4xx/5xx answer).
import { task, fetchAll, request, retry, title, log, progress, InvalidInput } from '../../sdk-js/ignareo.js';

export const run = task((input) => {
  if (!Array.isArray(input?.urls)) throw new InvalidInput('expected {"urls": [...], "concurrency": C, "retries": R}');
  const { urls, concurrency, retries } = input;
  if (concurrency === 0) throw new InvalidInput('concurrency must be at least 1');
  const policy = retries > 1 ? retry({ attempts: retries }) : undefined;
  const results = fetchAll(urls.map((url) => request(url, { retry: policy })), concurrency ?? undefined);

  let fetched = 0;
  let failed = 0;
  const titles = results.map((result, i) => {
    try {
      if (result instanceof Error) throw result;
      result.raiseForStatus();
    } catch (error) {
      log(`${urls[i]}: ${error.message}`, 'warn');
      failed += 1;
      return null;
    }
    fetched += 1;
    return title(result.text()) ?? '';
  });
  progress(fetched, urls.length);
  return { fetched, failed, titles };
});
