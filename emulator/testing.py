"""Pytest fixtures: `emulator` (a started, seeded emulator), `emulator_factory` (start your own) and `moto_sqs` (an
SQS endpoint). Enabled for the whole suite by `pytest_plugins = ["emulator.testing"]` in tests/conftest.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from emulator.feeds.processing import models_dir
from emulator.server import EmulatorOptions, EmulatorServer
from seller.config import Channel, parse_channels

__all__ = [
    "TEST_CHANNELS",
    "emulator",
    "emulator_factory",
    "moto_sqs",
    "lwa_token",
    "Api",
    "api",
    "conform",
    "conform_schema",
    "response_schema",
    "spapi_models",
]

# A small dedicated config: two marketplaces of one seller (US, DE) and Japan's zero-decimal currency.
TEST_CHANNELS: dict[str, Channel] = parse_channels(
    {
        "channels": [
            {"name": "us", "seller_id": "A3DEMOSELLER01", "marketplace_id": "ATVPDKIKX0DER", "region": "na"},
            {"name": "de", "seller_id": "A3DEMOSELLER01", "marketplace_id": "A1PA6795UKMFR9", "region": "eu"},
            {"name": "jp", "seller_id": "A3DEMOSELLER01", "marketplace_id": "A1VC38T7YXB528", "region": "fe"},
        ]
    },
    source="emulator.testing",
)

# Fast defaults for tests: limits on but refilled 1000× faster, feeds step instantly.
TEST_DEFAULTS: dict[str, Any] = {
    "synthetic": 200,
    "channels": TEST_CHANNELS,
    "rate_scale": 1000.0,
    "feed_step_seconds": 0.0,
}


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., EmulatorServer]]:
    """Call with EmulatorOptions fields (test defaults fill the rest); every server started is stopped."""
    started: list[EmulatorServer] = []

    def start(**overrides: Any) -> EmulatorServer:
        server = EmulatorServer(EmulatorOptions(**{**TEST_DEFAULTS, **overrides}))
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def emulator(emulator_factory: Callable[..., EmulatorServer]) -> EmulatorServer:
    return emulator_factory()


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server (every AWS service moto has) on a free loopback port: its endpoint URL, stopped on exit."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_sqs() -> Iterator[str]:
    """A moto server on a free loopback port; yields its endpoint URL."""
    with moto_server() as url:
        yield url


def lwa_token(server: EmulatorServer, scope: str | None = None) -> str:
    """An access token from the emulator's LWA endpoint (seller token, or grantless with `scope`)."""
    import httpx

    creds = server.state.store.tokens.credentials
    data = {"client_id": creds.client_id, "client_secret": creds.client_secret}
    if scope:
        data.update(grant_type="client_credentials", scope=scope)
    else:
        data.update(grant_type="refresh_token", refresh_token=creds.refresh_token)
    response = httpx.post(server.token_url, data=data)
    response.raise_for_status()
    return response.json()["access_token"]


# --- conformance and a tiny SP-API caller for tests ------------------------------------------------------------

US = "ATVPDKIKX0DER"
DE = "A1PA6795UKMFR9"
JP = "A1VC38T7YXB528"
SELLER = "A3DEMOSELLER01"


def spapi_models() -> Path:
    path = models_dir()
    if not (path / "models").is_dir():
        pytest.skip(f"Amazon's spapi-models not found at {path} (set SPAPI_MODELS_DIR); conformance checks skipped")
    return path


@cache
def _model(name: str) -> dict[str, Any]:
    return json.loads((spapi_models() / "models" / f"{name}.json").read_text(encoding="utf-8"))


def response_schema(model: str, operation_id: str, status: int) -> dict[str, Any]:
    doc = _model(model)
    for item in doc["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                response = op["responses"][str(status)]
                schema = response.get("schema")
                assert schema is not None, f"{operation_id} {status} declares no body"
                return {**schema, "definitions": doc["definitions"]}
    raise AssertionError(f"{operation_id} not in {model}")


def conform(model: str, operation_id: str, status: int, body: Any) -> None:
    """Validate a real response body against the official model's schema for (operation, status) (Draft 4)."""
    jsonschema.Draft4Validator(response_schema(model, operation_id, status)).validate(body)


def conform_schema(relative: str, document: Any) -> None:
    schema = json.loads((spapi_models() / "schemas" / relative).read_text(encoding="utf-8"))
    jsonschema.validators.validator_for(schema)(schema).validate(document)


class Api:
    """A tiny SP-API caller for tests (the real client lives in resources/spapi and is tested separately)."""

    def __init__(self, server: EmulatorServer, scope: str | None = None) -> None:
        self.server = server
        self.token = lwa_token(server, scope)
        self.http = httpx.Client(base_url=server.url, timeout=30)

    def __call__(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"x-amz-access-token": self.token, **kw.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kw)

    def control(self, method: str, path: str, **kw: Any) -> Any:
        response = self.http.request(method, "/_emulator" + path, **kw)
        assert response.status_code < 300, response.text
        return response.json()

    def listing(self, sku: str, mp: str = US) -> dict[str, Any]:
        return self.control("GET", "/listings", params={"sku": sku, "marketplaceId": mp})["listings"][0]

    def find(self, **filters: str) -> dict[str, Any]:
        found = self.control("GET", "/listings", params={"marketplaceId": US, "limit": 500, **filters})["listings"]
        return found[0]


@pytest.fixture
def api(emulator: EmulatorServer) -> Iterator[Api]:
    client = Api(emulator)
    yield client
    client.http.close()


def fbm_listing(api: Api, gated: bool = False) -> dict[str, Any]:
    for listing in api.control("GET", "/listings", params={"marketplaceId": US})["listings"]:
        if listing["fulfillment"] == "FBM" and (listing["productType"] == "WATCH") == gated and listing["price"]:
            return listing
    raise AssertionError("no suitable listing in the seed")


def price_patch(price: str, mp: str = US, currency: str = "USD") -> dict[str, Any]:
    return {
        "op": "replace",
        "path": "/attributes/purchasable_offer",
        "value": [
            {"marketplace_id": mp, "currency": currency, "our_price": [{"schedule": [{"value_with_tax": price}]}]}
        ],
    }


def quantity_patch(quantity: int) -> dict[str, Any]:
    return {
        "op": "replace",
        "path": "/attributes/fulfillment_availability",
        "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": quantity}],
    }
