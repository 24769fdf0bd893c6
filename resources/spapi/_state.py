"""Where the client's shared state lives: the one place that reads the state setting (`resources.state`).

The embedded default keeps the throttle (SQLite) and the LWA token cache (a 0600 file) in the client's state
directory, shared by the processes of one machine. The deployed mode (`SALES_CHANNEL_STATE=postgresql://...`) keeps
the throttle in Postgres, shared by every machine, and access tokens in this process's memory only (a token per
run): nothing is written under the state directory. Refresh tokens are never stored in either mode.
"""

from __future__ import annotations

from pathlib import Path

from resources.spapi._auth import TokenCache
from resources.spapi._throttle import Throttle
from resources.state import state_from_env

__all__ = ["shared_state"]


def shared_state(
    state_dir: Path,
    *,
    throttle: Throttle | None = None,
    token_cache: TokenCache | None = None,
    requests_per_minute: int = 30,
    requests_per_day: int = 36_000,
    feed_window_seconds: float | None = None,
) -> tuple[Throttle, TokenCache]:
    """The throttle and token cache to use: the given ones, else those the state setting selects."""
    if throttle is not None and token_cache is not None:
        return throttle, token_cache
    state = state_from_env()
    if throttle is None:
        limits = {
            "requests_per_minute": requests_per_minute,
            "requests_per_day": requests_per_day,
            "feed_window_seconds": feed_window_seconds,
        }
        if state.deployed:
            throttle = Throttle(dsn=state.dsn, **limits)
        else:
            throttle = Throttle(state_dir / "throttle.sqlite3", **limits)
    if token_cache is None:
        token_cache = TokenCache(None if state.deployed else state_dir / "lwa-tokens.json")
    return throttle, token_cache
