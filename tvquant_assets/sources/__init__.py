"""Source registry: one line per source."""

from __future__ import annotations

from tvquant_assets.manifest.schema import SourceConfig
from tvquant_assets.sources.base import Source
from tvquant_assets.sources.bundled import BundledSource
from tvquant_assets.sources.synthetic import SyntheticSource
from tvquant_assets.sources.tradingview import TradingViewSource

SOURCES: dict[str, type[Source]] = {
    "bundled": BundledSource,
    "synthetic": SyntheticSource,
    "tradingview": TradingViewSource,
}


def build_source(cfg: SourceConfig) -> Source:
    params = cfg.model_dump(exclude={"kind"})
    return SOURCES[cfg.kind](**params)


__all__ = ["SOURCES", "Source", "build_source"]
