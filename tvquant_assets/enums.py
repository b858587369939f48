"""Closed vocabularies used across floors (stage names live with the stages: ``tvquant_assets.stages.Stage``)."""

from enum import StrEnum


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
