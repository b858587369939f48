"""``metadata.add_partition_metadata`` records what Dagster's own ``add_asset_metadata`` records, partition by
partition, through real Dagster range runs (an in-memory instance, a daily-partitioned asset)."""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    DailyPartitionsDefinition,
    MetadataValue,
    asset,
    materialize,
)

from tvquant_assets.defs.metadata import add_partition_metadata

DAILY = DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-03-01")


def _recorded(add) -> dict[str, dict]:
    """Each partition's materialization metadata after a range run whose asset adds its metadata with ``add``."""
    @asset(partitions_def=DAILY)
    def thing(context: AssetExecutionContext) -> None:
        by_key = {k: {"row": i, "md": MetadataValue.md(f"| {k} |"), "flag": i % 2 == 0}
                  for i, k in enumerate(context.partition_keys)}
        by_key[context.partition_keys[3]]["extra"] = "only here"
        context.add_asset_metadata({"shared": 1}, partition_key=context.partition_keys[0])  # merged with it
        add(context, by_key)

    with DagsterInstance.ephemeral() as instance:
        keys = DAILY.get_partition_keys()[5:45]
        result = materialize([thing], instance=instance, tags={"dagster/asset_partition_range_start": keys[0],
                                                               "dagster/asset_partition_range_end": keys[-1]})
        assert result.success
        records = instance.fetch_materializations(AssetKey("thing"), limit=100).records
        return {r.partition_key: dict(r.asset_materialization.metadata) for r in records}


def test_added_at_once_as_dagster_adds_them_one_by_one():
    def one_by_one(context, by_key):
        for k, md in by_key.items():
            context.add_asset_metadata(md, partition_key=k)

    ours, dagsters = _recorded(add_partition_metadata), _recorded(one_by_one)
    assert len(ours) == 40
    assert ours == dagsters
    first = min(ours)
    assert ours[first]["shared"].value == 1 and ours[first]["row"].value == 0
