"""Source registry: one line per source, imported on first use (the live TradingView source pulls in
its network clients, which validating a manifest never needs)."""

from __future__ import annotations

from tvquant_assets.manifest.schema import SourceConfig
from tvquant_assets.registry import Registry
from tvquant_assets.sources.base import Source

SOURCES = Registry("source", {
    "bundled": "tvquant_assets.sources.bundled:BundledSource",
    "synthetic": "tvquant_assets.sources.synthetic:SyntheticSource",
    "tradingview": "tvquant_assets.sources.tradingview.source:TradingViewSource",
    "files": "tvquant_assets.sources.files:FilesSource",
})


def build_source(cfg: SourceConfig) -> Source:
    """The source ``cfg.kind`` built with the rest of ``cfg`` as its parameters."""
    return SOURCES.create(cfg.kind, **cfg.model_dump(exclude={"kind"}))


__all__ = ["SOURCES", "Source", "build_source"]
