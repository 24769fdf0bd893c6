"""The seller's input files as validated, partitioned tables, each guarded by a blocking validity check.

A failed check stops everything downstream in the run (no prices, no feed), while the valid rows are still written
and shown; every problem is listed with file, row, column and value in the check's metadata and in the channel's
`input_errors` table.
"""

import dagster as dg
import pyarrow.compute as pc

from assets.metadata import preview
from pipelines.partitions import CHANNELS, channel_for, channel_partitions
from resources.warehouse import Warehouse
from seller.inputs import INPUTS, load_input

__all__ = ["input_assets"]

MAX_LISTED_PROBLEMS = 50

_DESCRIPTIONS = {
    "master_inventory": (
        "The seller's master inventory: one row per SKU with the seller's own stock (`quantity`), base `price` and "
        "product data (identifiers, brand, title, product type). Source: `master_inventory.csv|parquet` in the data "
        "directory; the same file feeds every channel partition."
    ),
    "channel_mappings": (
        "SKU to ASIN mappings of one channel: the ASIN (Amazon's channelSku), FBA or FBM fulfillment, the conflict "
        "strategy, the price floor and ceiling, our shipping charge and an optional per-SKU undercut. One row per "
        "SKU on the channel; a blank ASIN means not listed (mapping_missing). Source: `channel_mappings` file."
    ),
    "competitor_prices": (
        "Competitor offers on the channel's ASINs: one row per observed offer (seller, price, shipping, FBA/FBM, "
        "observed_at with offset). Source: `competitor_prices` file (third-party scrapes; the Pricing API pull "
        "joins it later). An absent file means no competitor data."
    ),
    "fba_inventory": (
        "FBA stock as Amazon reports it: one row per FBA SKU with its fulfillable quantity. Source: the "
        "`fba_inventory` file, which stays an override once the SP-API pull lands. An absent file means no figures."
    ),
}


def _build(name: str) -> dg.AssetsDefinition:
    spec = INPUTS[name]
    check_name = f"{name}_valid"

    @dg.asset(
        name=name,
        partitions_def=channel_partitions,
        group_name="inputs",
        kinds={"duckdb", "csv"},
        description=_DESCRIPTIONS[name],
        check_specs=[
            dg.AssetCheckSpec(
                check_name,
                asset=name,
                blocking=True,
                description=f"Every row of {name} is valid for this channel (types, ranges, keys, channel names).",
            )
        ],
    )
    def _input(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        channel = channel_for(context.partition_key)
        loaded = load_input(name, warehouse.data_dir, CHANNELS)
        valid = loaded.valid
        if spec.channel_scoped:
            valid = valid.filter(pc.equal(valid.column("channel"), channel.name))
        problems = loaded.errors_for(channel.name)
        with warehouse.connect(channel.name) as con:
            con.register("valid_rows", valid)
            con.register("problem_rows", problems)
            con.execute("BEGIN")
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM valid_rows")
            con.execute(
                "CREATE TABLE IF NOT EXISTS input_errors (input VARCHAR, file VARCHAR, row BIGINT, "
                '"column" VARCHAR, value VARCHAR, message VARCHAR, channel VARCHAR)'
            )
            con.execute("DELETE FROM input_errors WHERE input = ?", [name])
            con.execute("INSERT INTO input_errors SELECT ?, * FROM problem_rows", [name])
            con.execute("COMMIT")
        for row in problems.slice(0, 20).to_pylist():
            context.log.error(_describe(row))
        listed = problems.slice(0, MAX_LISTED_PROBLEMS)
        check = dg.AssetCheckResult(
            check_name=check_name,
            passed=problems.num_rows == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"{problems.num_rows} problem(s) in {name}; nothing is priced or published for channel "
                f"{channel.name} until they are fixed"
                if problems.num_rows
                else None
            ),
            metadata={
                "problems": dg.MetadataValue.int(problems.num_rows),
                "first_problems": preview(listed, MAX_LISTED_PROBLEMS),
            },
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(valid.num_rows),
                "source": dg.MetadataValue.path(str(loaded.path) if loaded.path else f"{name} (absent)"),
                "invalid_rows": dg.MetadataValue.int(len(set(problems.column("row").to_pylist()))),
                "preview": preview(valid.drop_columns(["_row"]) if "_row" in valid.column_names else valid),
            },
            check_results=[check],
        )

    return _input


def _describe(row: dict) -> str:
    where = f"{row['file']}, row {row['row']}" + (f", column {row['column']}" if row["column"] else "")
    value = f" (value {row['value']!r})" if row["value"] else ""
    return f"{where}: {row['message']}{value}"


input_assets: list[dg.AssetsDefinition] = [_build(name) for name in INPUTS]
