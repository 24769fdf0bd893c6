"""Benchmark the SP-API emulator: getListingsItem requests/s on loopback (limits off) and a 25,000-message
JSON_LISTINGS_FEED end to end. Ends with one line `emulator: rps=R feed_25k_s=S`.

    uv run python -m bench.emulator
"""

from __future__ import annotations

import json
import threading
import time

import httpx

from emulator.server import EmulatorOptions, EmulatorServer
from emulator.testing import TEST_CHANNELS, lwa_token

US = "ATVPDKIKX0DER"
SELLER = "A3DEMOSELLER01"


def bench_rps(server: EmulatorServer, seconds: float = 3.0, clients: int = 4) -> float:
    token = lwa_token(server)
    skus = [
        x["sku"]
        for x in httpx.get(server.url + "/_emulator/listings", params={"marketplaceId": US, "limit": 200}).json()[
            "listings"
        ]
    ]
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def worker(index: int) -> None:
        with httpx.Client(base_url=server.url, headers={"x-amz-access-token": token}) as client:
            n = 0
            while time.monotonic() < stop:
                sku = skus[n % len(skus)]
                response = client.get(
                    f"/listings/2021-08-01/items/{SELLER}/{sku}",
                    params={"marketplaceIds": US, "includedData": "summaries,offers"},
                )
                assert response.status_code == 200, response.text
                n += 1
            counts[index] = n

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def bench_feed(server: EmulatorServer, messages: int = 25_000) -> float:
    token = lwa_token(server)
    listings = httpx.get(server.url + "/_emulator/listings", params={"marketplaceId": US}).json()["listings"]
    body = {
        "header": {"sellerId": SELLER, "version": "2.0"},
        "messages": [
            {
                "messageId": i + 1,
                "sku": listings[i % len(listings)]["sku"],
                "operationType": "PATCH",
                "productType": "PRODUCT",
                "patches": [
                    {
                        "op": "replace",
                        "path": "/attributes/fulfillment_availability",
                        "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": i % 50}],
                    }
                ],
            }
            for i in range(messages)
        ],
    }
    data = json.dumps(body).encode()
    with httpx.Client(base_url=server.url, headers={"x-amz-access-token": token}, timeout=120) as client:
        started = time.monotonic()
        document = client.post("/feeds/2021-06-30/documents", json={"contentType": "application/json"}).json()
        httpx.put(document["url"], content=data, headers={"Content-Type": "application/json"}, timeout=120)
        feed_id = client.post(
            "/feeds/2021-06-30/feeds",
            json={
                "feedType": "JSON_LISTINGS_FEED",
                "marketplaceIds": [US],
                "inputFeedDocumentId": document["feedDocumentId"],
            },
        ).json()["feedId"]
        while True:
            feed = client.get(f"/feeds/2021-06-30/feeds/{feed_id}").json()
            if feed["processingStatus"] in ("DONE", "FATAL", "CANCELLED"):
                break
            time.sleep(0.02)
        elapsed = time.monotonic() - started
    assert feed["processingStatus"] == "DONE", feed
    return elapsed


def main() -> None:
    options = EmulatorOptions(synthetic=2000, channels=TEST_CHANNELS, rate_scale=0, feed_step_seconds=0)
    with EmulatorServer(options) as server:
        rps = bench_rps(server)
        print(f"getListingsItem: {rps:.0f} requests/s on loopback (4 keep-alive clients, limits off)")
        feed_s = bench_feed(server)
        print(f"JSON_LISTINGS_FEED with 25,000 messages: {feed_s:.2f} s from createFeedDocument to DONE")
    print(f"emulator: rps={rps:.0f} feed_25k_s={feed_s:.2f}")


if __name__ == "__main__":
    main()
