"""Resources the assets use besides the IO manager."""

from __future__ import annotations

from dagster import ConfigurableResource

from tvquant_assets.lake import Lake, default_lake_root


class LakeResource(ConfigurableResource):
    """Read access to the lake for trailing windows (same root resolution as the IO manager)."""

    root: str | None = None

    def open(self) -> Lake:
        return Lake.open(self.root or default_lake_root())
