"""Resource wiring: the warehouse, and which SP-API the pipeline talks to.

`SALES_CHANNEL_SPAPI` chooses the target:
- `emulator` (the default): the local SP-API emulator at `SPAPI_ENDPOINT` (default http://127.0.0.1:8787, started by
  `make demo` / `make emulator`), with the emulator's documented default credentials unless `SPAPI_LWA_*` are set.
- `amazon`: Amazon itself. `SPAPI_LWA_CLIENT_ID`, `SPAPI_LWA_CLIENT_SECRET` and `SPAPI_LWA_REFRESH_TOKEN` are
  required; each channel's region picks the production endpoint unless `SPAPI_ENDPOINT` overrides it (e.g. Amazon's
  sandbox); `SPAPI_AWS_ACCESS_KEY_ID`/`SPAPI_AWS_SECRET_ACCESS_KEY` switch SigV4 signing on.
Emulator credentials are never sent to Amazon: the two targets do not share defaults.
"""

from __future__ import annotations

import os

import dagster as dg

from resources.spapi_resource import ENV_VARS, SpApiResource
from resources.warehouse import Warehouse
from seller.config import data_dir

__all__ = ["EMULATOR_DEFAULTS", "resources", "spapi_resource"]

TARGET_ENV = "SALES_CHANNEL_SPAPI"
EMULATOR_URL = "http://127.0.0.1:8787"

# The emulator's documented defaults (emulator/README.md), used only when the target is the emulator.
EMULATOR_DEFAULTS = {
    "client_id": "amzn1.application-oa2-client.emulator",
    "client_secret": "emulator-client-secret",
    "refresh_token": "Atzr|emulator-refresh-token",
}


def spapi_resource() -> SpApiResource:
    target = os.environ.get(TARGET_ENV, "emulator")
    if target == "amazon":
        return SpApiResource.from_env()
    if target != "emulator":
        raise ValueError(f"{TARGET_ENV} must be 'emulator' or 'amazon', not {target!r}")
    fields: dict[str, str] = {}
    for name, default in EMULATOR_DEFAULTS.items():
        fields[name] = dg.EnvVar(ENV_VARS[name]) if os.environ.get(ENV_VARS[name]) else default
    endpoint = os.environ.get(ENV_VARS["endpoint"]) or EMULATOR_URL
    token_url = os.environ.get(ENV_VARS["token_url"]) or f"{endpoint.rstrip('/')}/auth/o2/token"
    return SpApiResource(endpoint=endpoint, token_url=token_url, **fields)


def resources() -> dict[str, dg.ConfigurableResource]:
    return {"warehouse": Warehouse(data_dir=str(data_dir().resolve())), "spapi": spapi_resource()}
