"""Resource wiring: the warehouse, which SP-API the pipeline talks to, and S3 for the feed archive.

`SALES_CHANNEL_SPAPI` chooses the target:
- `emulator` (the default): the local SP-API emulator, with its documented default credentials unless `SPAPI_LWA_*`
  are set. With `SPAPI_ENDPOINT` set, a running emulator there (`make emulator`, the demo, tests); without it, an
  *embedded* emulator that a run starts on first use, seeded from the data directory and keeping Amazon's side of the
  world under `<data>/emulator/` between runs (one run at a time holds it; runs that need it queue on a file lock).
- `amazon`: Amazon itself. `SPAPI_LWA_CLIENT_ID`, `SPAPI_LWA_CLIENT_SECRET` and `SPAPI_LWA_REFRESH_TOKEN` are
  required; each channel's region picks the production endpoint unless `SPAPI_ENDPOINT` overrides it (e.g. Amazon's
  sandbox); `SPAPI_AWS_ACCESS_KEY_ID`/`SPAPI_AWS_SECRET_ACCESS_KEY` switch SigV4 signing on.
With either target, `SPAPI_LWA_SECRET_ID` names an AWS Secrets Manager secret holding the three LWA credentials instead
(read when a run sets the resource up; `SPAPI_LWA_*` are then ignored, and an embedded emulator accepts the secret's).
Emulator credentials are never sent to Amazon: the two targets share no defaults. Against the emulator the module's
30/minute and 36,000/day caps are off and the emulator's rates are scaled up (`EMULATOR_RATE_SCALE`), so a demo seller
syncs in seconds; against Amazon both are as Amazon and the seller's module set them. With either target,
`SPAPI_REQUESTS_PER_MINUTE` / `SPAPI_REQUESTS_PER_DAY` replace the client's module caps (0 switches one off), e.g. to
hold a client to Amazon's 30 / 36,000 against an emulator that enforces them.

`s3` (dagster-aws `S3Resource`) is always present: boto3's credential chain, `AWS_REGION` (else `AWS_DEFAULT_REGION`)
and `AWS_ENDPOINT_URL_S3` (a moto server) when set. The `feed_archive` asset uploads only when
`SALES_CHANNEL_ARCHIVE_BUCKET` is set (`resources.archive`).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from pipelines.partitions import CHANNELS
from resources.spapi import SpApiClient
from resources.spapi_resource import ENV_VARS, SpApiResource, cap_env_fields, lwa_env_fields
from resources.warehouse import Warehouse
from seller.config import data_dir

__all__ = ["EMULATOR_DEFAULTS", "EmbeddedSpApi", "resources", "s3_resource", "spapi_resource"]

TARGET_ENV = "SALES_CHANNEL_SPAPI"
EMULATOR_RATE_SCALE = 100.0  # x Amazon's documented refill rates (bursts unchanged)
EMULATOR_FEED_STEP_SECONDS = 0.5

# The emulator's documented defaults (emulator/README.md), used only when the target is the emulator.
EMULATOR_DEFAULTS = {
    "client_id": "amzn1.application-oa2-client.emulator",
    "client_secret": "emulator-client-secret",
    "refresh_token": "Atzr|emulator-refresh-token",
}


class EmbeddedSpApi(SpApiResource):
    """An SP-API resource whose emulator is started inside the run on first use and stopped with the run."""

    emulator_dir: str
    seed_from: str

    _server: Any = PrivateAttr(default=None)
    _lock_file: Any = PrivateAttr(default=None)

    def client_for(self, seller_id: str, **kwargs: Any) -> SpApiClient:
        if self._server is None:
            self._start()
        return super().client_for(seller_id, **kwargs)

    def _start(self) -> None:
        from emulator.auth import LwaCredentials
        from emulator.server import EmulatorOptions, EmulatorServer

        state = Path(self.emulator_dir)
        state.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(state / ".lock", "w")  # noqa: SIM115 - held until teardown
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        server = EmulatorServer(
            EmulatorOptions(
                state_dir=str(state),
                seed_from=self.seed_from,
                channels=CHANNELS,
                credentials=LwaCredentials(**self._lwa_credentials()),
                rate_scale=EMULATOR_RATE_SCALE,
                feed_step_seconds=EMULATOR_FEED_STEP_SECONDS,
            )
        )
        server.start()
        self._server = server
        self._runtime_endpoint = server.url

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        super().teardown_after_execution(context)
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None


def spapi_resource() -> SpApiResource:
    target = os.environ.get(TARGET_ENV, "emulator")
    if target == "amazon":
        return SpApiResource.from_env()
    if target != "emulator":
        raise ValueError(f"{TARGET_ENV} must be 'emulator' or 'amazon', not {target!r}")
    fields: dict[str, Any] = lwa_env_fields(defaults=EMULATOR_DEFAULTS)
    fields.update({"requests_per_minute": 0, "requests_per_day": 0, **cap_env_fields()})
    endpoint = os.environ.get(ENV_VARS["endpoint"])
    if endpoint:
        token_url = os.environ.get(ENV_VARS["token_url"]) or f"{endpoint.rstrip('/')}/auth/o2/token"
        return SpApiResource(endpoint=endpoint, token_url=token_url, **fields)
    data = data_dir().resolve()
    return EmbeddedSpApi(emulator_dir=str(data / "emulator"), seed_from=str(data), **fields)


def s3_resource() -> S3Resource:
    """S3 for the feed archive; region and endpoint from the environment when set (else boto3's defaults)."""
    fields: dict[str, Any] = {}
    region = next((name for name in ("AWS_REGION", "AWS_DEFAULT_REGION") if os.environ.get(name)), None)
    if region:
        fields["region_name"] = dg.EnvVar(region)
    if os.environ.get("AWS_ENDPOINT_URL_S3"):
        fields["endpoint_url"] = dg.EnvVar("AWS_ENDPOINT_URL_S3")
    return S3Resource(**fields)


def resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "warehouse": Warehouse(data_dir=str(data_dir().resolve())),
        "spapi": spapi_resource(),
        "s3": s3_resource(),
    }
