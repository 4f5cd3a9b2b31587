"""Fetches BASE/page/0..COUNT-1 with gevent + requests, at most CONCURRENCY at a time, keeping
each page's title.

Usage: crawl_gevent.py BASE COUNT CONCURRENCY. Prints one JSON line: fetched, failed,
elapsed_s (the crawl itself), startup_cpu_s (this process's user + system time before the first
request) and settings (how it bounds its concurrency and what it sets beside the libraries'
defaults). The benchmark measures the process's CPU time and peak memory from the outside, from
its spawn to its exit, the same way for every client.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
import requests  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402

from page import title  # noqa: E402


def main():
    base, count, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=concurrency))
    pool = gevent.pool.Pool(concurrency)
    results = []
    titles = [None] * count

    def fetch(i):
        try:
            response = session.get(f"{base}/page/{i}", timeout=30)
            ok = response.status_code == 200 and len(response.content) > 0
            if ok:
                titles[i] = title(response.content)
            results.append(ok)
        except requests.RequestException:
            results.append(False)

    usage = resource.getrusage(resource.RUSAGE_SELF)
    startup_cpu_s = usage.ru_utime + usage.ru_stime
    started = time.monotonic()
    jobs = [pool.spawn(fetch, i) for i in range(count)]
    gevent.joinall(jobs)
    elapsed = time.monotonic() - started
    fetched = sum(results)
    print(json.dumps({
        "fetched": fetched,
        "failed": count - fetched,
        "elapsed_s": elapsed,
        "startup_cpu_s": startup_cpu_s,
        "settings": f"`HTTPAdapter(pool_connections=1, pool_maxsize={concurrency})`, `timeout=30`, `Pool({concurrency})`",
    }))


main()
