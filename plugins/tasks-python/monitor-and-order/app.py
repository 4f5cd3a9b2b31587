"""`monitor-and-order`, in Python, written with plain `requests` and `time` as a bot outside
the host would be: `{"shop": BASE_URL, "item": ID, "poll_ms": N}` → opens the shop (which sets
a session cookie), polls `GET {shop}/api/items/{item}` every N ms until `in_stock` is true, then
`POST {shop}/api/orders` with the same cookies → `{"order_id": .., "polls": k}`."""

import time

import requests

import ignareo


@ignareo.task
def run(input):
    try:
        shop, item, poll_ms = input["shop"].rstrip("/"), str(input["item"]), int(input["poll_ms"])
    except (TypeError, KeyError, ValueError, AttributeError) as error:
        raise ignareo.InvalidInput(f'expected {{"shop": URL, "item": ID, "poll_ms": N}}: {error!r}')
    session = requests.Session()
    session.headers["User-Agent"] = "ignareo-monitor-and-order/0.1"
    session.get(f"{shop}/").raise_for_status()

    polls = 0
    while True:
        polls += 1
        answer = session.get(f"{shop}/api/items/{item}")
        answer.raise_for_status()
        if answer.json()["in_stock"]:
            break
        ignareo.progress(polls, None, "waiting for stock")
        time.sleep(poll_ms / 1000)
    ignareo.log(f"item {item} in stock after {polls} polls; ordering")

    order = session.post(f"{shop}/api/orders", data={"item": item, "quantity": "1"})
    order.raise_for_status()
    return {"order_id": order.json()["order_id"], "polls": polls}
