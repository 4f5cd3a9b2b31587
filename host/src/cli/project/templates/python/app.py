"""{{name}}: an ignareo task. Input `{"url": "https://..."}`; output the page's status and
`<title>`, `{"status": 200, "title": "..."}`. Its manifest (`ignareo.toml`) must grant the
page's host."""

import ignareo
from ignareo import html


@ignareo.task
def run(input):
    if not isinstance(input, dict) or not isinstance(input.get("url"), str):
        raise ignareo.InvalidInput('expected {"url": "..."}')
    # A session keeps the cookies a site sets from one request to the next.
    session = ignareo.Session()
    page = session.get(input["url"], timeout=30)
    page.raise_for_status()
    ignareo.log(f"{page.url} answered {len(page.content)} bytes")
    return {"status": page.status_code, "title": html.title(page.text)}
