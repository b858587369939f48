"""Retry and concurrency policies for steps that call a market-data source.

Assets that call a live source use ``SOURCE_RETRY`` (exponential backoff with jitter, so many failed
steps do not retry in lockstep) and run in the ``tradingview_api`` pool, which the instance limits
(``concurrency.pools`` in dagster.yaml) so parallel runs do not hammer the source.
"""

import contextlib

from dagster import Backoff, Failure, Jitter, RetryPolicy

from tvquant_assets.errors import ConfigurationError

TRADINGVIEW_POOL = "tradingview_api"
LIVE_SOURCES = frozenset({"tradingview"})

SOURCE_RETRY = RetryPolicy(max_retries=3, delay=2.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


def source_pool(source_kind: str) -> str | None:
    """The pool of steps that call ``source_kind``: ``tradingview_api`` for live sources, none for local data."""
    return TRADINGVIEW_POOL if source_kind in LIVE_SOURCES else None


@contextlib.contextmanager
def no_retry_on_configuration_errors():
    """A configuration error (unknown symbol, engine, parameter) fails the step at once: retrying it three
    times only delays the same line. Other errors (a refused connection, a timeout) keep ``SOURCE_RETRY``."""
    try:
        yield
    except ConfigurationError as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
