"""Fetches BASE/page/0..COUNT-1 with asyncio + aiohttp, at most CONCURRENCY at a time, keeping
each page's title.

Usage: crawl_aiohttp.py BASE COUNT CONCURRENCY. Prints one JSON line: fetched, failed,
elapsed_s, cpu_s (this process, user + system), peak_rss_mib.
"""

import asyncio
import json
import resource
import sys
import time

import aiohttp

from page import title


async def crawl(base, count, concurrency):
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        gate = asyncio.Semaphore(concurrency)
        titles = [None] * count

        async def fetch(i):
            async with gate:
                try:
                    async with session.get(f"{base}/page/{i}") as response:
                        body = await response.read()
                        ok = response.status == 200 and len(body) > 0
                        if ok:
                            titles[i] = title(body)
                        return ok
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    return False

        return await asyncio.gather(*(fetch(i) for i in range(count)))


def main():
    base, count, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    started = time.monotonic()
    results = asyncio.run(crawl(base, count, concurrency))
    elapsed = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    fetched = sum(results)
    print(json.dumps({
        "fetched": fetched,
        "failed": count - fetched,
        "elapsed_s": elapsed,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }))


main()
