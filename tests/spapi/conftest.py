"""Helpers for the SP-API client tests: a client wired to an emulator, and the emulator's control API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator.server import EmulatorServer
from resources.spapi import RetryPolicy, SpApiClient

SELLER = "A3DEMOSELLER01"
US = "ATVPDKIKX0DER"
DE = "A1PA6795UKMFR9"
JP = "A1VC38T7YXB528"

# Short backoffs so retry tests stay fast; bounds still apply.
FAST_RETRY = RetryPolicy(max_attempts=4, max_total_seconds=20.0, backoff_base=0.05, backoff_cap=0.2)


def credentials(server: EmulatorServer) -> dict[str, str]:
    creds = server.state.store.tokens.credentials
    return {"client_id": creds.client_id, "client_secret": creds.client_secret, "refresh_token": creds.refresh_token}


def control(server: EmulatorServer, method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(method, server.url + "/_emulator" + path, timeout=10, **kwargs)
    assert response.status_code < 300, response.text
    return response.json()


def fault(server: EmulatorServer, **spec: Any) -> None:
    control(server, "POST", "/faults", json=spec)


def listings(server: EmulatorServer, **filters: str) -> list[dict[str, Any]]:
    return control(server, "GET", "/listings", params={"marketplaceId": US, **filters})["listings"]


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., SpApiClient]]:
    """`make_client(server, **overrides)`: a client for the demo seller against `server`, state in tmp_path."""
    clients: list[SpApiClient] = []

    def build(server: EmulatorServer, **overrides: Any) -> SpApiClient:
        kwargs: dict[str, Any] = {
            "seller_id": SELLER,
            **credentials(server),
            "endpoint": server.url,
            "token_url": server.token_url,
            "state_dir": tmp_path / "state",
            "retry": FAST_RETRY,
            "requests_per_minute": 0,
            "requests_per_day": 0,
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
        }
        kwargs.update(overrides)
        client = SpApiClient(**kwargs)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()
