"""Live TradingView source: screener scans (universe), websocket daily bars, SCD-2 catalog, parity.

``TradingViewSource`` is imported on first access, so importing a helper module of this package (the
manifest schema checks presets) does not load the network clients.
"""

__all__ = ["TradingViewSource"]


def __getattr__(name: str):
    if name == "TradingViewSource":
        from tvquant_assets.sources.tradingview.source import TradingViewSource

        return TradingViewSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
