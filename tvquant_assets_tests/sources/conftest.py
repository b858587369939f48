"""Fixtures of the TradingView tests: a fake TradingView on 127.0.0.1 (stopped in the finalizer)."""

from __future__ import annotations

import pytest

from tvquant_assets_tests.sources.tv_fake_server import FakeTradingView
from tvquant_assets_tests.sources.tv_fixtures import TODAY, fake_bars


@pytest.fixture(scope="session")
def recorded_bars():
    return fake_bars()


@pytest.fixture
def fake_tv(recorded_bars):
    server = FakeTradingView(recorded_bars, now=TODAY).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tv_env(tmp_path, monkeypatch):
    """A temp lake and a fixed 'today' for the source."""
    monkeypatch.setenv("TVQUANT_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("TVQUANT_TODAY", TODAY)
    return tmp_path
