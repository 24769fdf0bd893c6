"""Shared fixtures. The SP-API emulator fixtures live in `emulator.testing` so any test can start one."""

from collections.abc import Iterator

import duckdb
import pytest

pytest_plugins = ["emulator.testing"]


@pytest.fixture
def store_con() -> Iterator[duckdb.DuckDBPyConnection]:
    """An empty notification store: an in-memory DuckDB database (tests/deploy runs the same tests on Postgres)."""
    con = duckdb.connect()
    try:
        yield con
    finally:
        con.close()
