"""DuckDB extensions for the deployed mode (ducklake, postgres, httpfs), loaded from their Python packages.

The packages (`duckdb-extension-*`, pinned in uv.lock with DuckDB itself: an extension binary only loads into the
DuckDB version it was built for) ship DuckDB's signed binaries. They load with unsigned extensions disallowed (DuckDB's
default, asserted here) and with auto-install and auto-load off, so a run never downloads anything: a missing package
is an import error naming it, not a network call.
"""

from __future__ import annotations

import functools
import importlib
import tempfile
from pathlib import Path

import duckdb

__all__ = ["load_extensions"]

# The entry point DuckDB looks for is named after the file: the postgres package's binary is the `postgres_scanner`
# extension, so every binary is loaded through a link named after its extension.
_EXTENSION_NAMES = {"ducklake": "ducklake", "postgres": "postgres_scanner", "httpfs": "httpfs"}
_PACKAGES = {
    "ducklake": "duckdb_extension_ducklake",
    "postgres": "duckdb_extension_postgres",
    "httpfs": "duckdb_extension_httpfs",
}


@functools.cache
def _binary(name: str) -> Path:
    package = importlib.import_module(_PACKAGES[name])
    found = sorted(Path(package.__file__).parent.glob(f"extensions/v{duckdb.__version__}/*.duckdb_extension"))
    if not found:
        raise RuntimeError(f"{_PACKAGES[name]} has no binary for DuckDB {duckdb.__version__}: pin both to one version")
    link = Path(tempfile.mkdtemp(prefix="duckdb-ext-")) / f"{_EXTENSION_NAMES[name]}.duckdb_extension"
    link.symlink_to(found[0])
    return link


def load_extensions(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Load the named extensions (`ducklake`, `postgres`, `httpfs`) into `con` from their packages."""
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    if con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone()[0]:
        raise RuntimeError("refusing to load extensions into a connection that allows unsigned extensions")
    for name in names:
        con.execute(f"LOAD '{_binary(name)}'")
