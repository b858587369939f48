"""Warnings raised inside an asset body go to the run's log (the UI shows them), not to the terminal."""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def warnings_to_run_log(log) -> Iterator[None]:
    """Record the warnings of the block and log each distinct one once at INFO (the CLI's console shows
    WARNING and above; the run's event log keeps everything)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            yield
        finally:
            seen = set()
            for w in caught:
                key = (w.category.__name__, str(w.message))
                if key not in seen:
                    seen.add(key)
                    log.info(f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})")
