"""`python -m reliability.push_child DATA CHANNEL ENDPOINT STATE_DIR RUN_ID KILL_AT`: one feed push of a channel (the
same `sync.push.Push` the `listings_submission` asset runs), killed with SIGKILL at a step boundary.

The seam is here, not in production code: this script wraps `Push`/client methods so that the process kills itself
(`os.kill(os.getpid(), SIGKILL)`: no finally blocks, no atexit, no DuckDB checkpoint) at KILL_AT:

- `before_create_feed`: the submission is recorded (hash, SKUs) and committed; createFeed not sent.
- `after_create_feed`: createFeed answered; the feedId not yet written to the ledger.
- `after_feed_recorded`: the feedId committed to the ledger; polling not started.
- `during_polling`: at the first getFeed.
- `after_report`: the report read and mapped to outcomes; sync_history / published_state not written.
- `none`: no kill (the push completes).

Optional `key=value` arguments after KILL_AT (the cross-channel scenarios): `max_messages=N` (messages per feed
document: one feed per N SKUs), `rate_scale=X` (the client's usage plans × X, as the emulator's `--rate-scale`),
`feed_window=S` (the JSON_LISTINGS_FEED window, seconds; default 1), `go=PATH` (touch `PATH.<pid>.ready`, then wait
for PATH to exist: several children start together). The last line printed is `RESULT {json}`: the push summary's
figures and the client's counters.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

BOUNDARIES = (
    "before_create_feed",
    "after_create_feed",
    "after_feed_recorded",
    "during_polling",
    "after_report",
    "none",
)


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> int:
    data, channel_name, endpoint, state_dir, run_id, kill_at = argv[:6]
    assert kill_at in BOUNDARIES, kill_at
    options = dict(arg.split("=", 1) for arg in argv[6:])
    assert set(options) <= {"max_messages", "rate_scale", "feed_window", "go"}, options
    from assets.feed_files import publishable_updates
    from feeds.store import LocalFeedStore
    from pipelines.partitions import channel_for
    from pipelines.resources import EMULATOR_DEFAULTS
    from resources.spapi import FeedPolling
    from resources.spapi._client import SpApiClient
    from resources.spapi.operations import OPERATIONS
    from resources.spapi_resource import SpApiResource
    from resources.warehouse import Warehouse
    from sync.push import Push, PushSettings

    if kill_at == "before_create_feed":
        original_submit = Push._submit

        def submit(self, submission_id, document):
            _die()
            return original_submit(self, submission_id, document)

        Push._submit = submit
    elif kill_at == "after_create_feed":
        original_feed = SpApiClient.submit_feed

        def submit_feed(self, *args, **kwargs):
            original_feed(self, *args, **kwargs)
            _die()

        SpApiClient.submit_feed = submit_feed
    elif kill_at == "during_polling":
        SpApiClient.get_feed = lambda self, feed_id: _die()
    elif kill_at == "after_report":
        Push._write = lambda self, updates: _die()

    spapi = SpApiResource(
        **{
            **EMULATOR_DEFAULTS,
            "endpoint": endpoint,
            "token_url": endpoint + "/auth/o2/token",
            "state_dir": state_dir,
            "requests_per_minute": 0,
            "requests_per_day": 0,
            "max_attempts": 2,
            "backoff_base": 0.01,
            "backoff_cap": 0.05,
            "feed_window_seconds": float(options.get("feed_window", 1.0)),
            "usage_plans": {
                name: {"rate": op.rate * float(options["rate_scale"]), "burst": op.burst}
                for name, op in OPERATIONS.items()
            }
            if "rate_scale" in options
            else {},
        }
    )
    channel = channel_for(channel_name)
    sizing = {"max_messages": int(options["max_messages"])} if "max_messages" in options else {}
    settings = PushSettings(feed_threshold=0, polling=FeedPolling(initial=0.05), **sizing)
    hook = (lambda feed_id: _die()) if kill_at == "after_feed_recorded" else None
    warehouse = Warehouse(data_dir=data)
    client = spapi.client_for(channel.seller_id, region=channel.region)

    def updates(con):
        publishable_updates(con, channel.name)
        return "updates"

    if "go" in options:
        go = Path(options["go"])
        Path(f"{go}.{os.getpid()}.ready").touch()
        while not go.exists():
            time.sleep(0.01)
    summary = Push(
        lambda: warehouse.connect(channel.name),
        client,
        channel,
        run_id=run_id,
        settings=settings,
        after_feed_recorded=hook,
        feeds=LocalFeedStore(warehouse.feeds_dir(channel.name)),
    ).run(updates)
    print(f"push_child: {summary}")
    totals = {k: v for k, v in spapi.metadata().items() if k.startswith("spapi/total/")}
    print("RESULT " + json.dumps({"feeds_submitted": summary.feeds_submitted, "statuses": summary.statuses, **totals}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
