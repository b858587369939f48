"""Retry and concurrency policies for steps that call a market-data source.

Assets that call a live source use ``SOURCE_RETRY`` (exponential backoff with jitter, so many failed
steps do not retry in lockstep) and run in the ``tradingview_api`` pool, which the instance limits
(``concurrency.pools`` in dagster.yaml) so parallel runs do not hammer the source.
"""

from dagster import Backoff, Jitter, RetryPolicy

TRADINGVIEW_POOL = "tradingview_api"
LIVE_SOURCES = frozenset({"tradingview"})

SOURCE_RETRY = RetryPolicy(max_retries=3, delay=2.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


def source_pool(source_kind: str) -> str | None:
    """The pool of steps that call ``source_kind``: ``tradingview_api`` for live sources, none for local data."""
    return TRADINGVIEW_POOL if source_kind in LIVE_SOURCES else None
