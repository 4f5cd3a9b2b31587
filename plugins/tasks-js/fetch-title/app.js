// `fetch-title`, in JavaScript with the standard `fetch`: `{"url": U, "proxy": P}` →
// `{"status": S, "title": T}`, T being the page's `<title>` (null if it has none), fetched
// through proxy P if given.
import { task, get, title, InvalidInput } from '../../sdk-js/ignareo.js';

export const run = task(async (input) => {
  if (typeof input?.url !== 'string') throw new InvalidInput('expected {"url": "...", "proxy": "..." (optional)}');
  if (input.proxy) {
    const page = get(input.url, { proxy: input.proxy });
    return { status: page.status, title: title(page.text()) };
  }
  const page = await fetch(input.url);
  return { status: page.status, title: title(await page.text()) };
});
