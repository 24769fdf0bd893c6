"""The push holds the channel's DuckDB file only around its reads and writes: while it waits on Amazon another process
can open the file (DuckDB lets one process at a time hold it, readers included), and a second push of the same
channel waits for the first instead of interleaving with it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import replace

import dagster as dg
import pytest

from assets.feed_files import publishable_updates
from pipelines.partitions import channel_for
from reliability.wiretap import Wiretap
from resources.spapi import FeedPolling
from resources.warehouse import Warehouse
from sync.push import Push, PushBusy, PushSettings
from tests.sync.helpers import control, prepare_offline, query, run, seller_dir, spapi_for, start_emulator, submit_rows

# Another process reading the ledger (retrying the file lock for 1 s, as the warehouse's readers do).
READER = """
import sys, time, duckdb
deadline = time.monotonic() + 1.0
while True:
    try:
        con = duckdb.connect(sys.argv[1], read_only=True)
        break
    except duckdb.IOException:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
print(con.execute("SELECT count(feed_id), min(status) FROM submissions").fetchall())
"""


def wait_until_polling(tap: Wiretap, timeout: float = 60.0) -> None:
    """Until the push's first getFeed: its feed is created and recorded, and the push is waiting on it."""
    deadline = time.monotonic() + timeout
    while not tap.calls("getFeed"):
        assert time.monotonic() < deadline, "the push never polled a feed"
        time.sleep(0.02)


def test_another_process_opens_the_channel_file_while_the_push_waits_on_a_feed(tmp_path, emulator_factory):
    seller = seller_dir(tmp_path)
    server = start_emulator(emulator_factory, seller)
    control(server, "POST", "/faults", json={"kind": "feed_stuck", "operation": "createFeed"})  # IN_QUEUE for good
    tap = Wiretap(server)
    readings: list[subprocess.CompletedProcess] = []

    def read_while_the_push_waits() -> None:
        wait_until_polling(tap)
        database = seller / "warehouse" / "us.duckdb"
        command = [sys.executable, "-c", READER, str(database)]
        readings.append(subprocess.run(command, capture_output=True, text=True, timeout=60))

    reader = threading.Thread(target=read_while_the_push_waits)
    reader.start()
    push = {"feed_threshold": 0, "poll_max_wait_seconds": 6.0}  # the push polls getFeed for 6 s
    result = run(seller, "us", spapi_for(server, tmp_path), push=push)
    reader.join(60)
    assert result.success
    assert {s for s, _, _ in submit_rows(seller, "us", result.run_id).values()} == {"pending"}
    [reading] = readings
    assert reading.returncode == 0, reading.stderr[-1500:]
    assert reading.stdout.strip() == "[(1, 'submitted')]"  # the feedId was committed before the wait


def updates(con):
    publishable_updates(con, "us")
    return "updates"


def test_a_second_push_of_the_channel_does_not_start_while_one_runs(tmp_path, emulator_factory):
    seller = seller_dir(tmp_path)
    server = start_emulator(emulator_factory, seller)
    spapi = spapi_for(server, tmp_path)
    prepare_offline(seller, "us", spapi)
    control(server, "POST", "/faults", json={"kind": "feed_stuck", "operation": "createFeed"})
    tap = Wiretap(server)
    channel = channel_for("us")
    settings = PushSettings(feed_threshold=0, polling=FeedPolling(initial=0.05, in_queue_deadline=3, max_wait=3))

    def connect():
        return Warehouse(data_dir=str(seller)).connect("us")

    with dg.build_resources({"spapi": spapi}) as resources:
        client = resources.spapi.client_for(channel.seller_id, region=channel.region)
        errors: list[BaseException] = []

        def push_first() -> None:
            try:
                Push(connect, client, channel, run_id="first", settings=settings).run(updates)
            except BaseException as exc:
                errors.append(exc)

        first = threading.Thread(target=push_first)
        first.start()
        wait_until_polling(tap)
        with pytest.raises(PushBusy):
            Push(connect, client, channel, run_id="second", settings=replace(settings, lock_wait_seconds=0.5)).run(
                updates
            )
        first.join(60)
    assert errors == []
    assert len(server.state.store.feeds) == 1
    assert query(seller, "us", "SELECT DISTINCT run_id FROM sync_history WHERE operation = 'submit'") == [("first",)]
