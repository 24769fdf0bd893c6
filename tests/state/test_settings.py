"""The state settings: the embedded default when unset, clear errors that never show a password."""

import pytest

from resources.state import LAKE_ENV, STATE_ENV, StateConfigError, redact_dsn, state_from_env


def test_unset_is_the_embedded_default() -> None:
    assert not state_from_env({}).deployed


def test_postgres_url_and_lake_select_the_deployed_mode() -> None:
    state = state_from_env({STATE_ENV: "postgresql://u:s3cret@db:5432/x", LAKE_ENV: "s3://b/p/"})
    assert state.deployed
    assert state.lake_data_path == "s3://b/p/lake/"
    assert state.feeds_path("uk") == "s3://b/p/feeds/uk"
    assert "s3cret" not in repr(state)


def test_errors_name_the_variable_and_hide_the_password() -> None:
    with pytest.raises(StateConfigError, match=LAKE_ENV) as missing:
        state_from_env({STATE_ENV: "postgresql://u:s3cret@db/x"})
    with pytest.raises(StateConfigError, match=STATE_ENV) as wrong:
        state_from_env({STATE_ENV: "mysql://u:s3cret@db/x", LAKE_ENV: "s3://b"})
    assert "s3cret" not in str(missing.value) + str(wrong.value)
    assert redact_dsn("host=db password=s3cret user=u") == "host=db password=*** user=u"


def test_extensions_load_signed_from_their_packages_without_network() -> None:
    import duckdb

    from resources.duckdb_extensions import load_extensions

    con = duckdb.connect()
    load_extensions(con, "ducklake", "postgres", "httpfs")
    loaded = {name for (name,) in con.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
    assert {"ducklake", "postgres_scanner", "httpfs"} <= loaded
    unsigned = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    with pytest.raises(RuntimeError, match="unsigned"):
        load_extensions(unsigned, "ducklake")
