"""The throttle on Postgres (the deployed mode): every test of tests/spapi/test_throttle.py again, with its state in
Postgres databases instead of SQLite files, plus what only Postgres has: schema creation racing between processes,
row locks (a seller's decision never waits for another seller's), and no password in errors."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg2
import pytest

from resources.postgres import StateUnavailable
from resources.spapi import Throttle
from tests.spapi import test_throttle

pytestmark = pytest.mark.slow

# The same tests, collected here again: the `where` fixture below puts their state in Postgres.
globals().update({name: getattr(test_throttle, name) for name in dir(test_throttle) if name.startswith("test_")})


@pytest.fixture
def where(state_dsn: str, postgres_server) -> Iterator[test_throttle.Where]:
    """name -> a Postgres database of its own (the test's first name gets `state_dsn`'s)."""
    databases: dict[str, str] = {}
    admin = psycopg2.connect(
        f"postgresql://{postgres_server.user}@127.0.0.1:{postgres_server.port}/{postgres_server.database}"
    )
    admin.autocommit = True

    def locate(name: str) -> dict[str, str]:
        if name not in databases:
            if not databases:
                databases[name] = state_dsn
            else:
                database = f"t_{uuid.uuid4().hex[:12]}"
                admin.cursor().execute(f"CREATE DATABASE {database}")
                databases[name] = state_dsn.rsplit("/", 1)[0] + "/" + database
        return {"dsn": databases[name]}

    yield locate
    for dsn in databases.values():
        if dsn != state_dsn:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {dsn.rsplit('/', 1)[1]} WITH (FORCE)")
    admin.close()


def _open(dsn: str, barrier, out) -> None:  # runs in a spawned process
    barrier.wait(60)
    try:
        Throttle(dsn=dsn).reserve("S@eu", "op", 1.0, 1)
        out.put("ok")
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")


def test_processes_starting_together_create_the_schema_once(state_dsn: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(6)
    procs = [ctx.Process(target=_open, args=(state_dsn, barrier, queue)) for _ in range(6)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert results == ["ok"] * 6


def test_a_decision_waits_only_for_its_own_seller(state_dsn: str) -> None:
    throttle = Throttle(dsn=state_dsn, requests_per_minute=30, requests_per_day=36_000)
    for seller in ("A@eu", "A@na", "B@eu"):
        throttle.reserve(seller, "op", 1.0, 5)
    # Another process's decision for A@eu, caught while it holds its bucket and A's windows.
    holder = psycopg2.connect(state_dsn)
    holder.cursor().execute(
        "SELECT 1 FROM sales_channel.throttle_buckets WHERE seller = 'A@eu' FOR UPDATE; "
        "SELECT 1 FROM sales_channel.throttle_locks WHERE name = 'window:A' FOR UPDATE"
    )
    waiting: dict[str, float] = {}

    def decide(seller: str) -> None:
        started = time.monotonic()
        throttle.reserve(seller, "op", 1.0, 5)
        waiting[seller] = time.monotonic() - started

    threads = {seller: threading.Thread(target=decide, args=(seller,)) for seller in ("A@eu", "A@na", "B@eu")}
    for thread in threads.values():
        thread.start()
    threads["B@eu"].join(5)
    time.sleep(1.0)
    # B decided at once; A in both regions (A's bucket, A's caps) waits for the holder's transaction.
    assert waiting.get("B@eu", 99) < 0.5 and "A@eu" not in waiting and "A@na" not in waiting
    holder.rollback()
    for thread in threads.values():
        thread.join(10)
    assert waiting["A@eu"] >= 1.0 and waiting["A@na"] >= 1.0
    holder.close()


def test_no_password_in_errors_or_reprs(state_dsn: str) -> None:
    assert "unused" not in repr(Throttle(dsn=state_dsn))  # the fixture's password
    closed = state_dsn.rsplit(":", 1)[0].replace(":unused@", ":s3cret-pw@") + ":1/nowhere"
    with pytest.raises(StateUnavailable) as raised:
        Throttle(dsn=closed)
    assert "s3cret-pw" not in str(raised.value) and "***" in str(raised.value)
