"""`fetch-title`, in Python: `{"url": U, "proxy": P}` → `{"status": S, "title": T}`, T being the
page's `<title>` (null if it has none), fetched through proxy P if given."""

import ignareo
from ignareo import html


@ignareo.task
def run(input):
    if not isinstance(input, dict) or not isinstance(input.get("url"), str):
        raise ignareo.InvalidInput('expected {"url": "...", "proxy": "..." (optional)}')
    page = ignareo.get(input["url"], proxies=input.get("proxy"))
    return {"status": page.status_code, "title": html.title(page.text)}
