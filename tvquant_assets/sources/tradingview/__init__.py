"""Live TradingView source: screener scans (universe), websocket daily bars, SCD-2 catalog, parity."""

from tvquant_assets.sources.tradingview.source import TradingViewSource

__all__ = ["TradingViewSource"]
