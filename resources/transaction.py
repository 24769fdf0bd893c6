"""One write transaction on a channel's connection, run again when a DuckLake commit conflicts. Dagster-free.

    for attempt in transaction(con):
        with attempt:
            con.execute("DELETE FROM ...")
            con.execute("INSERT INTO ...")

Each attempt is BEGIN ... COMMIT, rolled back when its block raises. A `with` block cannot run itself again, so the
attempts come from a loop: on the embedded file there is one writer per file and the first attempt commits. In the
deployed mode two runs of one channel (the offers pull beside a prices run) may change the same table at once;
DuckLake settles a mere race for the next snapshot itself (`ducklake_max_retry_count`) but aborts a logical conflict
(both deleted from one table, one replaced a table the other wrote) with "Failed to commit DuckLake transaction":
the block then runs again, against what the other run committed, up to `attempts` times in all, and the last conflict
is raised. A block must therefore be safe to run again: SQL, and Python that only reads what it computes. Other
stores pass their own `is_conflict` (the notification store on Postgres: a writer that lost to another's rows).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from types import TracebackType

import duckdb

__all__ = ["ATTEMPTS", "Attempt", "is_commit_conflict", "transaction"]

log = logging.getLogger(__name__)

ATTEMPTS = 5
_FIRST_WAIT_S = 0.2


def is_commit_conflict(exc: BaseException) -> bool:
    """A DuckLake commit that another transaction's commit made impossible (worth running the block again)."""
    return isinstance(exc, duckdb.TransactionException) and "Failed to commit DuckLake transaction" in str(exc)


class Attempt:
    """One attempt: BEGIN on entry; COMMIT when the block ends, ROLLBACK when it raises. A commit conflict is
    swallowed (the loop runs the block again) unless this is the last attempt."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, last: bool, is_conflict: Callable[[BaseException], bool]
    ) -> None:
        self.con, self.last, self.is_conflict = con, last, is_conflict
        self.committed = False
        self.conflict: BaseException | None = None

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self.con.execute("BEGIN")
        return self.con

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if exc is None:
            try:
                self.con.execute("COMMIT")
                self.committed = True
                return False
            except duckdb.Error as failed:
                exc = failed
                if not self.is_conflict(failed) or self.last:
                    self._rollback()
                    raise
        self._rollback()
        if self.is_conflict(exc) and not self.last:
            self.conflict = exc
            return True
        return False

    def _rollback(self) -> None:
        try:
            self.con.execute("ROLLBACK")
        except duckdb.TransactionException:
            pass  # a failed COMMIT has already ended the transaction


def transaction(
    con: duckdb.DuckDBPyConnection,
    attempts: int = ATTEMPTS,
    is_conflict: Callable[[BaseException], bool] = is_commit_conflict,
    first_wait: float = _FIRST_WAIT_S,
) -> Iterator[Attempt]:
    """The attempts at one transaction on `con` (see the module's docstring): stops after the first that commits."""
    for number in range(1, attempts + 1):
        attempt = Attempt(con, last=number == attempts, is_conflict=is_conflict)
        yield attempt
        if attempt.committed or attempt.conflict is None:
            return
        wait = first_wait * 2 ** (number - 1) * (0.5 + random.random())
        log.warning("commit conflict (attempt %d of %d), running it again in %.2f s", number, attempts, wait)
        time.sleep(wait)
