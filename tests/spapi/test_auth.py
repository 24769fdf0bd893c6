"""LWA against the emulator: caching, single flight across threads and processes, Unauthorized handling, grantless."""

from __future__ import annotations

import json
import multiprocessing
import stat
import threading
from pathlib import Path

import pytest

from resources.spapi import LwaError, ReauthorizationRequired, SpApiClient, Unauthorized
from tests.spapi.conftest import SELLER, US, control, credentials, listings


def test_token_cached_in_memory_and_in_the_shared_file(emulator, make_client, tmp_path: Path) -> None:
    sku = listings(emulator)[0]["sku"]
    client = make_client(emulator)
    client.get_listings_item(sku, [US])
    client.get_listings_item(sku, [US])
    assert client.lwa_refreshes == 1
    # A second client (another process would be the same) finds the token in the state directory.
    other = make_client(emulator)
    other.get_listings_item(sku, [US])
    assert other.lwa_refreshes == 0
    cache = tmp_path / "state" / "lwa-tokens.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    text = cache.read_text()
    creds = credentials(emulator)
    assert creds["refresh_token"] not in text and creds["client_secret"] not in text
    assert len(json.loads(text)) == 1


def test_single_flight_refresh_across_threads(emulator, make_client) -> None:
    sku = listings(emulator)[0]["sku"]
    clients = [make_client(emulator) for _ in range(8)]  # separate providers; one shared cache
    barrier = threading.Barrier(len(clients))
    errors: list[BaseException] = []

    def work(client: SpApiClient) -> None:
        try:
            barrier.wait()
            client.get_listings_item(sku, [US])
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sum(c.lwa_refreshes for c in clients) == 1


def _process_call(url: str, token_url: str, creds: dict, state_dir: str, sku: str, barrier, out) -> None:
    client = SpApiClient(
        seller_id=SELLER,
        **creds,
        endpoint=url,
        token_url=token_url,
        state_dir=state_dir,
        requests_per_minute=0,
        requests_per_day=0,
    )
    barrier.wait(30)
    client.get_listings_item(sku, [US])
    out.put(client.lwa_refreshes)
    client.close()


def test_single_flight_refresh_across_processes(emulator, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    sku = listings(emulator)[0]["sku"]
    args = (emulator.url, emulator.token_url, credentials(emulator), str(tmp_path / "state"), sku, barrier, out)
    procs = [ctx.Process(target=_process_call, args=args) for _ in range(2)]
    for p in procs:
        p.start()
    refreshes = [out.get(timeout=60), out.get(timeout=60)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sorted(refreshes) == [0, 1]


def test_revoked_token_is_refreshed_once_and_retried(emulator, make_client) -> None:
    sku = listings(emulator)[0]["sku"]
    client = make_client(emulator)
    client.get_listings_item(sku, [US])
    control(emulator, "POST", "/tokens/revoke", json={"access_tokens": True})
    assert client.get_listings_item(sku, [US])["sku"] == sku
    assert client.lwa_refreshes == 2
    assert client.counters.by_operation["getListingsItem"].calls == 3  # ok, 403, retried ok


def test_expired_token_after_clock_advance(emulator, make_client) -> None:
    sku = listings(emulator)[0]["sku"]
    client = make_client(emulator)
    client.get_listings_item(sku, [US])
    control(emulator, "POST", "/clock/advance", json={"seconds": 3700})  # Amazon's tokens live 3,600 s
    client.get_listings_item(sku, [US])
    assert client.lwa_refreshes == 2


def test_unauthorized_is_not_retried_in_a_loop(emulator_factory, make_client) -> None:
    # Every request fails the signature check: one refresh, one retry, then a typed error.
    server = emulator_factory(verify_sigv4=True)
    sku = listings(server)[0]["sku"]
    client = make_client(server, aws_access_key_id="AKIAEMULATOREXAMPLE", aws_secret_access_key="not-the-secret")
    with pytest.raises(Unauthorized) as info:
        client.get_listings_item(sku, [US])
    assert info.value.status == 403 and info.value.operation == "getListingsItem"
    assert info.value.request_id
    assert client.counters.by_operation["getListingsItem"].calls == 2
    assert client.lwa_refreshes == 2


def test_revoked_refresh_token_raises_lwa_error(emulator, make_client) -> None:
    client = make_client(emulator)
    control(emulator, "POST", "/tokens/revoke", json={"refresh_token": credentials(emulator)["refresh_token"]})
    with pytest.raises(LwaError) as info:
        client.get_listings_item("ANY", [US])
    assert info.value.amazon_code == "invalid_grant"
    # Also an `Unauthorized` (what the push stops on), saying what the seller has to do.
    assert isinstance(info.value, Unauthorized) and isinstance(info.value, ReauthorizationRequired)
    assert info.value.code == "Unauthorized"
    assert str(info.value).startswith("Unauthorized") and "re-authorize" in str(info.value)


def test_grantless_token_for_destinations(emulator, make_client) -> None:
    client = make_client(emulator)
    created = client.create_destination("channel-events", "arn:aws:sqs:us-east-1:000000000000:channel-events")
    assert created["destinationId"]
    assert [d["destinationId"] for d in client.get_destinations()] == [created["destinationId"]]
    # The seller token and the grantless token are separate cache entries.
    sku = listings(emulator)[0]["sku"]
    client.get_listings_item(sku, [US])
    assert client.lwa_refreshes == 2
