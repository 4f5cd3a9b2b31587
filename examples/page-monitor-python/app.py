"""page-monitor: watches one value on a page and reports when it changes, as a price or stock
monitor does.

Input: ``{"url": U, "pattern": P, "interval_secs": S, "max_checks": N}``, all but ``url``
optional. The value is what the regular expression P finds on the page (its first group if it
has one), or the page's ``<title>`` without a pattern. The page is fetched every S seconds
(default 10), at most N times (default 20), by one session: cookies the site sets (consent,
region) are kept, and a fetch that fails is tried again (3 tries) before the check is given up.

Output: ``{"changed": true, "before": A, "after": B, "checks": k}`` at the first change, or
``{"changed": false, "value": A, "checks": N}``. Events: progress after every check, a warning
for a check whose fetch failed, and a ``changed`` event (``before``, ``after``) when it changes.
"""

import re

import ignareo
from ignareo import html

USAGE = 'expected {"url": "...", "pattern": "...", "interval_secs": S, "max_checks": N}'


def value_of(page, pattern):
    """The value on ``page``: what ``pattern`` finds, else the title; ``None`` if absent."""
    if pattern is None:
        return html.title(page)
    found = pattern.search(page)
    if found is None:
        return None
    return found.group(1) if pattern.groups else found.group(0)


@ignareo.task
def run(input):
    if not isinstance(input, dict) or not isinstance(input.get("url"), str):
        raise ignareo.InvalidInput(USAGE)
    try:
        pattern = re.compile(input["pattern"]) if input.get("pattern") else None
        interval = float(input.get("interval_secs", 10))
        max_checks = int(input.get("max_checks", 20))
    except (re.error, TypeError, ValueError) as error:
        raise ignareo.InvalidInput(f"{USAGE}: {error}")
    if max_checks < 1 or interval < 0:
        raise ignareo.InvalidInput("max_checks must be at least 1 and interval_secs not negative")

    session = ignareo.Session(headers={"User-Agent": "ignareo-page-monitor/0.1"}, retry=ignareo.Retry(attempts=3))
    seen, before = False, None
    for check in range(1, max_checks + 1):
        try:
            page = session.get(input["url"], timeout=30)
            page.raise_for_status()
        except ignareo.RequestException as error:
            ignareo.log(f"check {check}: {error}", level="warn")
        else:
            value = value_of(page.text, pattern)
            if not seen:
                seen, before = True, value
            elif value != before:
                ignareo.emit("changed", {"before": before, "after": value, "check": check})
                return {"changed": True, "before": before, "after": value, "checks": check}
        ignareo.progress(check, max_checks, f"unchanged: {before!r}" if seen else "no answer yet")
        if check < max_checks:
            ignareo.sleep(interval)
    return {"changed": False, "value": before, "checks": max_checks}
