"""The lake as a Dagster IO manager: ``<root>/<manifest>/<stage>/<YYYY-MM-DD>.parquet``.

Outputs of partitioned assets are always ``{partition_key: DataFrame}`` (a range run writes many
partitions at once); inputs of partitioned assets load as such a dict too, even for one partition.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from dagster import ConfigurableIOManagerFactory, InputContext, MultiPartitionKey, OutputContext, UPathIOManager
from upath import UPath

from tvquant_assets import progress
from tvquant_assets.errors import LakeError
from tvquant_assets.lake import Lake, default_lake_root
from tvquant_assets.lake.store import is_date_key
from tvquant_assets.stages import ahead


class LakeIOManager(UPathIOManager):
    extension = ".parquet"

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        super().__init__(base_path=lake.root)

    def dump_to_path(self, context: OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        self.lake.write_path(path, obj)

    def load_from_path(self, context: InputContext, path: UPath) -> pd.DataFrame:
        return self.lake.read_path(path)

    def _get_paths_for_partitions(self, context: InputContext | OutputContext) -> dict[str, Any]:
        """The lake's own paths of ``<manifest>/<stage>`` partitions (plain strings on a local lake: the same
        files as the UPath joins of the base class, which cost more than writing a small partition)."""
        key = context.asset_key.path
        if self.lake.is_local and len(key) == 2 and context.has_asset_partitions:
            keys = context.asset_partition_keys
            if all(not isinstance(k, MultiPartitionKey) and is_date_key(k) for k in keys):
                return {k: self.lake.path(key[0], key[1], k) for k in keys}
        return super()._get_paths_for_partitions(context)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if not context.has_asset_partitions:
            return super().handle_output(context, obj)
        paths = self._get_paths_for_partitions(context)
        if not isinstance(obj, dict) or set(obj) != set(paths):
            missing = sorted(set(paths) - set(obj or {}))[:3]
            raise LakeError(f"{context.asset_key.to_user_string()}: output must hold every partition of the run; "
                            f"missing {missing}")
        seen = len(self.lake.edited_replaced)
        with progress.timed("lake_write"):
            self.lake.write_many([(path, obj[key]) for key, path in paths.items()])
        key = context.asset_key.path
        if len(key) == 2:  # a stage's partitions of this run: what the run's lane may read (stages/ahead.py)
            ahead.mark_written(context.run_id, key[1])
        edited = self.lake.edited_replaced[seen:]
        if edited:  # a partition changed outside the lake: say so before its replacement hides it
            from tvquant_assets import alerts

            message = (f"{context.asset_key.to_user_string()}: {len(edited)} partition file(s) had been edited "
                       f"outside the lake (content != its stored hash) and were replaced: {', '.join(edited[:5])}")
            context.log.warning(message)
            alerts.alert(message, {"asset": context.asset_key.to_user_string(), "files": edited})

    def load_input(self, context: InputContext) -> Any:
        if context.has_asset_partitions:
            paths = self._get_paths_for_partitions(context)
            return {key: self.lake.read_path(path) for key, path in paths.items()}
        return super().load_input(context)


class LakeIOManagerFactory(ConfigurableIOManagerFactory):
    """Lake root: this field, else the TVQUANT_LAKE environment variable, else ./.tvquant/lake."""

    root: str | None = None

    def create_io_manager(self, context) -> LakeIOManager:
        return LakeIOManager(Lake.open(self.root or default_lake_root()))
