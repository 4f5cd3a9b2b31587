"""`crawler`, in Python: `{"urls": [..], "concurrency": C, "retries": R}` → fetches every URL
with `fetch_all`, at most C at a time, each tried up to R times (default 1: no retry) →
`{"fetched": n, "failed": m, "titles": [..]}`, titles in input order, null where the fetch
failed (an error, or a 4xx/5xx answer)."""

import ignareo
from ignareo import html


@ignareo.task
def run(input):
    if not isinstance(input, dict) or not isinstance(input.get("urls"), list):
        raise ignareo.InvalidInput('expected {"urls": [...], "concurrency": C, "retries": R}')
    urls, concurrency, retries = input["urls"], input.get("concurrency"), input.get("retries")
    if concurrency == 0:
        raise ignareo.InvalidInput("concurrency must be at least 1")
    retry = ignareo.Retry(attempts=retries) if retries and retries > 1 else None
    requests = [ignareo.Request("GET", url, retry=retry) for url in urls]

    fetched, failed, titles = 0, 0, []
    for url, result in zip(urls, ignareo.fetch_all(requests, concurrency=concurrency)):
        try:
            if isinstance(result, Exception):
                raise result
            result.raise_for_status()
        except ignareo.RequestException as error:
            ignareo.log(f"{url}: {error}", level="warn")
            failed += 1
            titles.append(None)
            continue
        fetched += 1
        titles.append(html.title(result.text) or "")
    ignareo.progress(fetched, len(urls))
    return {"fetched": fetched, "failed": failed, "titles": titles}
