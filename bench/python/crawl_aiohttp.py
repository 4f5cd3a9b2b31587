"""Fetches BASE/page/0..COUNT-1 with asyncio + aiohttp, at most CONCURRENCY at a time, keeping
each page's title.

Usage: crawl_aiohttp.py BASE COUNT CONCURRENCY. Prints one JSON line: fetched, failed,
elapsed_s (the crawl itself), startup_cpu_s (this process's user + system time before the first
request) and settings (how it bounds its concurrency and what it sets beside the libraries'
defaults). The benchmark measures the process's CPU time and peak memory from the outside, from
its spawn to its exit, the same way for every client.
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
    usage = resource.getrusage(resource.RUSAGE_SELF)
    startup_cpu_s = usage.ru_utime + usage.ru_stime
    started = time.monotonic()
    results = asyncio.run(crawl(base, count, concurrency))
    elapsed = time.monotonic() - started
    fetched = sum(results)
    print(json.dumps({
        "fetched": fetched,
        "failed": count - fetched,
        "elapsed_s": elapsed,
        "startup_cpu_s": startup_cpu_s,
        "settings": f"`TCPConnector(limit={concurrency})`, `ClientTimeout(total=30)`, `Semaphore({concurrency})`",
    }))


main()
