"""Closed vocabularies used across floors."""

from enum import StrEnum


class Stage(StrEnum):
    CATALOG = "catalog"
    PRICES = "prices"
    SCAN = "scan"
    REGIME = "regime"  # before selection: selection applies the regime's preset of D
    SELECTION = "selection"
    ESTIMATION = "estimation"
    TOURNAMENT = "tournament"
    BACKTEST = "backtest"
    DRIFT = "drift"
    AUDIT = "audit"


STAGES: tuple[Stage, ...] = tuple(Stage)


class Profile(StrEnum):
    MIN_VARIANCE = "min_variance"
    MAX_SHARPE = "max_sharpe"
    RISK_PARITY = "risk_parity"
    HRP = "hrp"
    HERC = "herc"
    BENCHMARK = "benchmark"
    EQUAL_WEIGHT = "equal_weight"
    BARBELL = "barbell"
    MARKET_NEUTRAL = "market_neutral"
    ADAPTIVE = "adaptive"


class RegimeLabel(StrEnum):
    QUIET = "QUIET"
    NORMAL = "NORMAL"
    TURBULENT = "TURBULENT"
    CRISIS = "CRISIS"


class Quadrant(StrEnum):
    EXPANSION = "EXPANSION"
    INFLATIONARY_TREND = "INFLATIONARY_TREND"
    STAGNATION = "STAGNATION"
    CRISIS = "CRISIS"
    NORMAL = "NORMAL"
