"""The manifest schema: one YAML file = one pipeline instance. Unknown keys are errors."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tvquant_assets.enums import Profile, Quadrant, RegimeLabel

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BundledSourceConfig(Strict):
    """skfolio's S&P 500 daily adjusted closes (20 stocks, 1990-2022), shipped with the package."""

    kind: Literal["bundled"] = Field("bundled", description="Source selector.")
    dataset: Literal["sp500"] = Field("sp500", description="Bundled dataset: `sp500` is skfolio's 20 US large caps.")


class SyntheticSourceConfig(Strict):
    """Seeded regime-switching factor model with OHLCV, volume and sectors. Clearly synthetic."""

    kind: Literal["synthetic"] = Field("synthetic", description="Source selector.")
    n_symbols: int = Field(50, ge=2, le=10_000, description="Number of symbols generated.")
    start: dt.date = Field(dt.date(2015, 1, 1), description="First date of generated bars.")
    end: dt.date = Field(dt.date(2020, 12, 31), description="Last date of generated bars.")
    seed: int = Field(7, description="Random seed: the same seed gives the same market.")
    n_sectors: int = Field(6, ge=1, le=50, description="Number of sectors the symbols are spread over.")

    @model_validator(mode="after")
    def _dates(self) -> SyntheticSourceConfig:
        if self.start >= self.end:
            raise ValueError(f"start {self.start} is after end {self.end}" if self.start > self.end
                             else f"start and end are both {self.start}")
        return self


class TradingViewScan(Strict):
    """One screener scan: a preset (built-in or from ``presets``) run for one direction."""

    preset: str = Field(..., description="A built-in screener preset or one defined in `presets`.")
    direction: Literal["long", "short"] = Field("long", description="Book the scan's symbols are screened for.")


class ToxicDataConfig(Strict):
    """Bars that mark a symbol toxic (with a reason; the data is kept)."""

    max_daily_return: float = Field(5.0, gt=0.0, description="a close-to-close return above this (5.0 = 500%)")
    frozen_bars: int = Field(5, ge=2, description="this many identical consecutive closes = frozen price")
    volume_spike: float = Field(50.0, gt=1.0, description="volume above this multiple of the trailing median")
    volume_window: int = Field(20, ge=5, description="Bars of the trailing median volume.")


class ParityConfig(Strict):
    """Metadata parity between the stored catalog and the live screener snapshot."""

    severity: Literal["warn", "error"] = Field("warn", description="A mismatch warns or fails the check.")
    fields: list[Literal["exchange", "type", "currency", "tick_size", "sector"]] = Field(
        default_factory=lambda: ["exchange", "type", "currency", "tick_size", "sector"], min_length=1,
        description="Catalog fields compared with the live screener.")


class TradingViewSourceConfig(Strict):
    """Live TradingView: screener scans pick the universe, websocket daily bars fill the history."""

    kind: Literal["tradingview"] = Field("tradingview", description="Source selector.")
    scans: list[TradingViewScan] = Field(..., min_length=1, description="Screener scans that pick the universe.")
    presets: dict[str, dict] = Field(default_factory=dict, description="Extra presets; may extend built-ins.")
    quote_priority: list[str] = Field(default_factory=list, description="One venue per base asset: first wins.")
    alternatives: str | None = Field(None, description="Preset of implementation alternatives (e.g. perps).")
    max_symbols: int = Field(50, ge=1, le=5000, description="At most this many symbols from the scans.")
    history_start: dt.date = Field(dt.date(2020, 1, 1), description="First date of the daily bars fetched.")
    exchange_calendar: str = Field("24/7", description="exchange-calendars name (XNYS, CMES...), 24/7 or 24/5.")
    bars_per_request: int = Field(1000, ge=10, le=5000, description="Bars asked per websocket request.")
    time_budget_s: float = Field(600.0, gt=0.0, description="Wall-time budget of one history fetch.")
    max_attempts: int = Field(5, ge=1, le=20, description="Attempts per call before giving up.")
    backoff_s: float = Field(1.0, ge=0.0, description="First retry delay; doubles per attempt, with jitter.")
    timeout_s: float = Field(30.0, gt=0.0, description="Timeout of one network call, seconds.")
    scanner_url: str = Field("https://scanner.tradingview.com", description="Screener endpoint (tests: a fake).")
    websocket_url: str = Field("wss://data.tradingview.com/socket.io/websocket",
                               description="Chart websocket endpoint (tests: a fake).")
    auth_url: str = Field("https://www.tradingview.com/", description="Page read for the user's auth token when "
                          "TVQUANT_TV_SESSIONID is set (tests: a fake).")
    failed_symbols: Literal["warn", "fail"] = Field(
        "warn", description="A symbol whose fetch failed: reported (warn) or fails the run (fail).")
    toxic: ToxicDataConfig = Field(ToxicDataConfig(), description="Bars that mark a symbol toxic.")
    parity: ParityConfig = Field(ParityConfig(), description="Catalog parity with the live screener.")

    @model_validator(mode="after")
    def _presets(self) -> TradingViewSourceConfig:
        from tvquant_assets.sources.tradingview.presets import check_presets

        check_presets(self.presets, [s.preset for s in self.scans] + [self.alternatives or ""])
        return self


class FilesSourceConfig(Strict):
    """The user's own CSV or parquet files, long or wide (formats: docs/files.md)."""

    kind: Literal["files"] = Field("files", description="Source selector.")
    prices: str = Field(..., min_length=1, description="Price file or glob (`data/*.csv`); a relative path is "
                                                       "relative to the manifest's folder.")
    layout: Literal["long", "wide"] = Field("long", description="`long`: rows of date, symbol, fields; `wide`: "
                                                                "one file per field (`close.csv`), dates x symbols.")
    catalog: str | None = Field(None, description="Optional catalog file: symbol, exchange, type, sector, industry, "
                                                  "currency (without it those columns are empty).")
    columns: dict[str, str] = Field(default_factory=dict, description="Our field -> the file's column name, e.g. "
                                    "`{date: Date, close: Last}` (default: the field names and common aliases).")
    adjust: Literal["auto", "none", "adjusted_close", "total_return"] = Field(
        "auto", description="How adj_close, dividend and split are used (auto: total_return with dividends or "
                            "splits, adjusted_close with adj_close, else none).")
    timezone: str = Field("UTC", description="IANA zone: stamps with a zone are converted to it, stamps without "
                                             "one are local to it.")
    next_day_from: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
                                      description="Local HH:MM: a bar stamped at or after it belongs to the next "
                                                  "date (sessions that open the evening before).")

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: dict[str, str]) -> dict[str, str]:
        allowed = ("date", "symbol", "open", "high", "low", "close", "volume", "adj_close", "dividend", "split")
        unknown = sorted(set(v) - set(allowed))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone {v!r} (e.g. America/New_York, UTC)") from None
        return v


SourceConfig = BundledSourceConfig | SyntheticSourceConfig | TradingViewSourceConfig | FilesSourceConfig


class UniverseConfig(Strict):
    """Scan filters, computed point in time from the price lake."""

    symbols: list[str] | None = Field(None, description="Restrict to these symbols (default: all the source has).")
    min_history_days: int = Field(252, ge=1, description="Bars of history required before a symbol is eligible.")
    min_price: float = Field(1.0, ge=0.0, description="Last close must be at least this.")
    min_value_traded: float | None = Field(
        None, ge=0.0, description="20-day mean of close x volume; skipped (and recorded) if the source has no volume."
    )
    max_volatility: float | None = Field(None, gt=0.0, description="Annualized 20-day volatility cap.")
    max_stale_days: int = Field(5, ge=0, description="A symbol with no bar for more than this many days is inactive.")


class LinkageConfig(Strict):
    """The one hierarchical-clustering configuration shared by selection and the hierarchical engines."""

    method: Literal["ward", "average", "complete", "single"] = Field(
        "ward", description="scipy linkage method on the correlation distance sqrt(0.5 (1 - rho)).")
    distance: Literal["pearson", "spearman", "kendall"] = Field(
        "pearson", description="correlation rho of the distance, for selection and the hierarchical allocators")
    allocation_tree: Literal["estimation", "selection"] = Field(
        "estimation", description="HRP/HERC/benchmark tree: estimation (covariance, or the window's rank "
        "correlation) or selection (the selection's averaged distance and method on the book)")
    max_clusters: int = Field(5, ge=1, description="Cut the tree into at most this many clusters.")
    distance_threshold: float | None = Field(
        None, gt=0.0, description="Cut height; when set it wins over max_clusters."
    )


SCORED_FEATURES = ("momentum", "stability", "entropy", "efficiency", "hurst", "skew", "kurtosis", "cvar",
                   "liquidity")


class FeatureWindows(Strict):
    """Trailing windows (panel rows) of the selection features (see ``core/features.py``)."""

    volatility: int = Field(63, ge=5, description="volatility and stability (1/vol)")
    entropy: int = Field(63, ge=10, description="permutation entropy of returns")
    efficiency: int = Field(63, ge=2, description="Kaufman efficiency ratio")
    hurst: int = Field(126, ge=20, description="Hurst exponent")
    moments: int = Field(126, ge=10, description="skew and kurtosis")
    cvar: int = Field(252, ge=20, description="5% CVaR")
    liquidity: int = Field(20, ge=1, description="mean value traded")
    rsi: int = Field(14, ge=2, description="RSI of the short book")


class SelectionVetoes(Strict):
    """Vetoes on RAW feature values (never on percentiles or scores). Unset rules are off."""

    min_momentum: float | None = Field(None, description="raw momentum return below this is vetoed")
    max_volatility: float | None = Field(None, gt=0.0, description="annualized volatility above this")
    max_entropy: float | None = Field(None, gt=0.0, le=1.0, description="permutation entropy above this")
    min_efficiency: float | None = Field(None, ge=0.0, le=1.0, description="efficiency ratio below this")
    max_kurtosis: float | None = Field(None, description="excess kurtosis above this")
    max_cvar: float | None = Field(None, gt=0.0, description="5% CVaR (a positive daily loss) above this")
    min_liquidity: float | None = Field(
        None, ge=0.0, description="mean value traded below this; skipped (and said) when the source has no volume")


class ShortBookConfig(Strict):
    """Short mean reversion ("selling rips"): overbought inside a confirmed downtrend."""

    enabled: bool = Field(False, description="Build the short book.")
    rsi_overbought: float = Field(70.0, gt=50.0, lt=100.0, description="RSI at or above this is overbought")
    trend_window: int = Field(200, ge=20, description="long moving average the close must be below")
    slope_window: int = Field(20, ge=1, description="the moving average must be lower than this many rows ago")
    max_symbols: int = Field(4, ge=1, description="At most this many symbols in the short book.")


class SelectionConfig(Strict):
    """Features, vetoes, correlation clusters and the pick per cluster, point in time."""

    momentum_lookback: int = Field(
        252, ge=5, description="Trading days of the momentum window: close[t-skip] / close[t-skip-lookback] - 1.")
    momentum_skip: int = Field(21, ge=0, description="Most recent trading days left out of momentum.")
    correlation_lookback: int = Field(252, ge=20, description="used when correlation_lookbacks is not set")
    correlation_lookbacks: list[int] | None = Field(
        None, min_length=1, description="average the correlation distance over these windows (rows)")
    min_momentum_percentile: float = Field(
        0.0, ge=0.0, le=1.0, description="Veto symbols whose momentum percentile (0 worst, 1 best) is below this.")
    top_n_per_cluster: int = Field(2, ge=1, description="most names per cluster (the cap of dynamic top-N)")
    dynamic_top_n: bool = Field(True, description="names per cluster from the cluster's effective number of bets")
    max_symbols: int = Field(12, ge=1, description="At most this many symbols selected overall.")
    min_symbols: int = Field(1, ge=0, description="relax the pruning in recorded stages until this many are selected")
    relax_top_n_max: int | None = Field(
        None, ge=1, description="relaxation never keeps more names per cluster than this (unset: may lift the limit)")
    max_per_sector: int | None = Field(None, ge=1, description="At most this many selected symbols per sector.")
    sector_tilt: float = Field(0.0, ge=0.0, le=1.0, description="score tilt toward sectors with strong momentum")
    execution_weight: float = Field(0.25, ge=0.0, description="weight of liquidity/low-vol in the in-cluster order")
    score_weights: dict[str, float] = Field(
        default_factory=lambda: {"momentum": 1.0, "stability": 0.25, "efficiency": 0.25, "cvar": 0.25},
        description="Weights of the feature percentiles in the selection score.")
    windows: FeatureWindows = FeatureWindows()
    vetoes: SelectionVetoes = SelectionVetoes()
    short: ShortBookConfig = ShortBookConfig()
    linkage: LinkageConfig = LinkageConfig()

    @field_validator("score_weights")
    @classmethod
    def _known_features(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(SCORED_FEATURES))
        if unknown:
            raise ValueError(f"score_weights: unknown feature(s) {', '.join(unknown)}; "
                             f"known: {', '.join(SCORED_FEATURES)}")
        if any(w < 0 for w in v.values()) or not any(w > 0 for w in v.values()):
            raise ValueError("score_weights: weights must be >= 0 with at least one > 0")
        return v

    @model_validator(mode="after")
    def _book_sizes(self) -> SelectionConfig:
        if self.min_symbols > self.max_symbols:
            raise ValueError(f"min_symbols {self.min_symbols} is more than max_symbols {self.max_symbols}")
        return self

    @field_validator("correlation_lookbacks")
    @classmethod
    def _lookbacks(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and min(v) < 20:
            raise ValueError("correlation_lookbacks: every window must be at least 20 rows")
        return None if v is None else sorted(set(v))

    @property
    def correlation_windows(self) -> list[int]:
        return self.correlation_lookbacks or [self.correlation_lookback]

    @property
    def history_rows(self) -> int:
        """Panel rows before D the selection of D reads."""
        w, s = self.windows, self.short
        return max(self.momentum_lookback + self.momentum_skip, *self.correlation_windows, w.volatility,
                   w.entropy, w.efficiency, w.hurst, w.moments, w.cvar, w.liquidity, w.rsi,
                   s.trend_window + s.slope_window if s.enabled else 0) + 1


class RegimeThresholds(Strict):
    """Cut points between regime labels."""

    quiet: float = Field(0.75, gt=0.0, description="vol ratio below this is QUIET")
    turbulent: float = Field(1.25, gt=0.0, description="vol ratio at or above this is TURBULENT")
    crisis: float = Field(1.75, gt=0.0, description="vol ratio at or above this is CRISIS")

    @model_validator(mode="after")
    def _ordered(self) -> RegimeThresholds:
        if not self.quiet < self.turbulent < self.crisis:
            raise ValueError("thresholds must satisfy quiet < turbulent < crisis")
        return self


class CompositeWeights(Strict):
    """Weights of the regime metrics added to the volatility score (see ``core/regime.py``)."""

    hmm: float = Field(0.3, ge=0.0, description="x (P(stress state) - 0.5)")
    clustering: float = Field(0.0, ge=0.0, description="x autocorrelation of |r| at lag 1")
    spectral: float = Field(0.0, ge=0.0, description="x (1 - wavelet energy entropy)")


def _default_regret_profiles() -> dict[RegimeLabel, Profile]:
    return {RegimeLabel.QUIET: Profile.MAX_SHARPE, RegimeLabel.NORMAL: Profile.MAX_SHARPE,
            RegimeLabel.TURBULENT: Profile.MIN_VARIANCE, RegimeLabel.CRISIS: Profile.MIN_VARIANCE}


class RegretConfig(Strict):
    """The threshold auditor ("regime regret": per threshold, what adaptive switching cost in hindsight) and, with
    ``apply``, thresholds learned walk-forward by the regime stage (``core/regime_learning.py``)."""

    turbulent_grid: list[float] = Field(
        default_factory=lambda: [1.0, 1.1, 1.25, 1.5, 1.75, 2.0], min_length=1,
        description="turbulent thresholds to audit (crisis scales with it)")
    profiles: dict[RegimeLabel, Profile] = Field(
        default_factory=_default_regret_profiles,
        description="profile per label when regime_presets sets none (all four labels)")
    switch_cost: float | None = Field(
        None, ge=0.0, lt=1.0, description="fraction of value per switch (default: 2 x backtest cost rate)")
    apply: bool = Field(
        False, description="label D with the turbulent/crisis pair of turbulent_grid of least regret of the "
                           "regime's own profile proxies on outcomes before D's month's first day (refit monthly)")
    horizon: int = Field(21, ge=2, le=126, description="trading days a learned decision is held and judged over")
    learn_window: int = Field(
        504, ge=42, le=2520, description="trading days of past decisions the thresholds and auto weights learn on")

    @field_validator("profiles")
    @classmethod
    def _every_label(cls, v: dict[RegimeLabel, Profile]) -> dict[RegimeLabel, Profile]:
        missing = [label.value for label in RegimeLabel if label not in v]
        if missing:
            raise ValueError(f"profiles: give a profile for every label (missing {', '.join(missing)})")
        return v

    @field_validator("turbulent_grid")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(not x > 0 for x in v):
            raise ValueError("turbulent_grid: thresholds must be > 0")
        return v

    @model_validator(mode="after")
    def _decisions(self) -> RegretConfig:
        if self.learn_window < 3 * self.horizon:  # core/regime_learning.MIN_DECISIONS
            raise ValueError(f"learn_window {self.learn_window} holds fewer than 3 decisions of horizon "
                             f"{self.horizon}: learn_window must be >= 3 x horizon")
        return self


class RegimeConfig(Strict):
    """Market regime from an equal-weight proxy of the eligible universe, point in time."""

    short_window: int = Field(21, ge=5, description="Trading days of the short realized-volatility window.")
    long_window: int = Field(
        252, ge=20, description="Trading days of the long realized-volatility window; no label before it is full.")
    growth_window: int = Field(126, ge=5, description="Trading days of the trailing return used as the growth axis.")
    stress_vol: float = Field(0.25, gt=0.0, description="annualized short-window vol at or above which stress is high")
    neutral_growth: float = Field(0.02, ge=0.0, description="|trailing return| below this counts as no growth signal")
    thresholds: RegimeThresholds = RegimeThresholds()
    metrics_window: int = Field(126, ge=32, description="window of entropy, Hurst, ADF, clustering, wavelets")
    wavelet: str = Field("db4", description="PyWavelets discrete wavelet of the spectral metric")
    wavelet_levels: int = Field(4, ge=1, le=8, description="Decomposition levels of the DWT wavelet entropy.")
    hmm_window: int = Field(252, ge=60, description="returns the 2-state HMM is fitted on")
    hmm_refit: Literal["weekly", "monthly"] = Field(
        "monthly", description="fit on the first proxy day of each period, carried until the next")
    hmm_seed: int = Field(7, description="Seed of the 2-state HMM fit (same seed, same states).")
    hmm_iterations: int = Field(30, ge=1, le=500, description="EM iterations of each HMM fit.")
    weights: CompositeWeights | Literal["auto"] = Field(
        default_factory=CompositeWeights,
        description="composite weights, or auto: fitted walk-forward (non-negative least squares of the coming "
                    "horizon's realized-vol ratio on the signals, outcomes before D's month's first day)")
    regret: RegretConfig = RegretConfig()

    @field_validator("weights", mode="before")
    @classmethod
    def _weights_word(cls, v):
        if not isinstance(v, dict | CompositeWeights) and v != "auto":
            raise ValueError(f"weights: {v!r} is neither a mapping of hmm/clustering/spectral nor auto")
        return v

    @model_validator(mode="after")
    def _windows(self) -> RegimeConfig:
        if self.short_window >= self.long_window:
            raise ValueError("short_window must be smaller than long_window")
        import pywt

        if self.wavelet not in pywt.wavelist(kind="discrete"):
            raise ValueError(f"wavelet {self.wavelet!r} is not a PyWavelets discrete wavelet (e.g. haar, db4, sym5)")
        return self

    @property
    def history_rows(self) -> int:
        """Panel rows before D the regime of D reads (+23: the HMM's refit day is up to a month back; learned
        thresholds or weights add their decisions, horizon and refit month)."""
        rows = max(self.long_window, self.growth_window, self.metrics_window, self.hmm_window + 23) + 1
        if self.learns:
            rows += self.regret.learn_window + self.regret.horizon + 23
        return rows

    @property
    def learns(self) -> bool:
        """Thresholds or composite weights are learned walk-forward (``core/regime_learning.py``)."""
        return self.regret.apply or self.weights == "auto"


class RegimeShrinkageConfig(Strict):
    """Covariance shrinkage scaled by the regime's turbulence: ``clip(base * stress_score, min, max)``.

    ``base`` is the estimator's own intensity (Ledoit-Wolf/OAS; 0 for the sample covariance) and
    ``stress_score`` the regime stage's turbulence score (1 when the regime is in warm-up).
    """

    enabled: bool = Field(False, description="Scale the shrinkage by the regime's stress score.")
    min: float = Field(0.0, ge=0.0, le=1.0, description="lowest shrinkage intensity")
    max: float = Field(1.0, ge=0.0, le=1.0, description="highest shrinkage intensity")

    @model_validator(mode="after")
    def _ordered(self) -> RegimeShrinkageConfig:
        if self.min > self.max:
            raise ValueError(f"regime_shrinkage.min {self.min} is above max {self.max}")
        return self


class BlackLittermanConfig(Strict):
    """Black-Litterman with one absolute view per selected symbol from its momentum percentile.

    Prior: equilibrium ``pi = risk_aversion * Sigma @ w_eq`` (equal weights: the sources carry no market
    caps). View on symbol i: ``pi_i + view_spread * (2 * momentum_pct_i - 1) * regime_view_scale[regime]``.
    Omega is He-Litterman ``diag(tau P Sigma P') * (1 - confidence) / confidence``.
    """

    tau: float = Field(0.05, gt=0.0, le=1.0, description="Scale of the prior's uncertainty (tau Sigma).")
    confidence: float = Field(0.5, gt=0.0, lt=1.0, description="view confidence; 0.5 = He-Litterman omega")
    risk_aversion: float = Field(2.5, gt=0.0, description="Risk aversion of the equilibrium prior.")
    view_spread: float = Field(0.10, ge=0.0, description="annual return gap between top and median momentum")
    regime_view_scale: dict[RegimeLabel | Quadrant, float] = Field(
        default_factory=dict, description="multiplier of the views per regime label or quadrant (default 1)"
    )


class EstimationConfig(Strict):
    """Expected returns and covariance of the selected symbols."""

    lookback: int = Field(252, ge=20, description="Trading days of returns in the estimation window.")
    covariance: Literal["ledoit_wolf", "oas", "sample"] = Field(
        "ledoit_wolf", description="Covariance estimator: Ledoit-Wolf or OAS shrinkage, or the sample covariance.")
    expected_returns: Literal["historical", "ewma", "shrunk", "black_litterman"] = Field(
        "historical", description="Sample mean, exponentially weighted mean, James-Stein shrunk mean, or the "
                                  "Black-Litterman posterior.")
    ewma_halflife: float = Field(63.0, gt=0.0, description="days, for expected_returns: ewma")
    periods_per_year: int = Field(252, ge=1, description="Annualization factor of mu and the covariance.")
    regime_shrinkage: RegimeShrinkageConfig = RegimeShrinkageConfig()
    black_litterman: BlackLittermanConfig = BlackLittermanConfig()
    psd_floor: float = Field(
        1e-10, ge=0.0, lt=1.0, description="eigenvalues below psd_floor x mean variance are raised to it (recorded)"
    )


RiskMeasureName = Literal[
    "variance", "standard_deviation", "semi_variance", "semi_deviation", "mean_absolute_deviation", "cvar",
    "evar", "cdar", "max_drawdown", "worst_realization"]


class Candidate(Strict):
    """One tournament entry, named `<engine>/<profile>`."""

    engine: str = Field(..., description="A registered engine name (see tvquant_assets.core.engines).")
    profile: Profile = Field(..., description="Optimization profile; the engine must support it.")
    risk_measure: RiskMeasureName | None = Field(
        None, description="risk measure of hrp, herc, min_variance (minimum risk), max_sharpe (maximum ratio) and "
                          "risk_parity (risk budgeting); default variance (herc: cvar); the engine must support it")
    risk_beta: float | None = Field(None, gt=0.0, lt=1.0, description="confidence of cvar, evar, cdar (default 0.95)")

    @property
    def name(self) -> str:
        """``engine/profile``, plus ``/measure`` (and ``@beta``) when a risk measure is chosen."""
        base = f"{self.engine}/{self.profile.value}"
        if self.risk_measure is None:
            return base
        return f"{base}/{self.risk_measure}" + (f"@{self.risk_beta:g}" if self.risk_beta is not None else "")

    @property
    def beta(self) -> float:
        return 0.95 if self.risk_beta is None else float(self.risk_beta)


class Constraints(Strict):
    """Constraints every candidate respects."""

    long_only: bool = Field(True, description="false: long/short for the profiles that support it")
    max_weight: float = Field(0.35, gt=0.0, le=1.0, description="per-asset cap (|w| when long/short)")
    gross: float = Field(2.0, gt=0.0, description="long/short and market_neutral: sum |w| at most this")
    net: float = Field(0.0, ge=-1.0, le=1.0, description="long/short min_variance: sum w equals this")
    cluster_cap: float | None = Field(
        None, gt=0.0, le=1.0, description="largest total weight of one selection cluster (projected for HRP/HERC)"
    )
    cluster_cap_max: float = Field(
        1.0, gt=0.0, le=1.0, description="loosest cluster cap a date may relax to when cluster_cap is infeasible")
    turnover_penalty: float = Field(
        0.0, ge=0.0, description="L1 penalty on |w - previous decision| in annual-variance units"
    )
    beta_band: float = Field(0.05, ge=0.0, description="market_neutral: |beta' w| at most this")
    risk_aversion: float = Field(5.0, gt=0.0, description="market_neutral: mean-variance risk aversion")


class RegimeScaled(Strict):
    """A number that depends on the regime: ``by_regime`` (label first, then quadrant), else ``default``."""

    default: float = Field(0.0, ge=0.0, description="Value when no regime entry applies.")
    by_regime: dict[RegimeLabel | Quadrant, float] = Field(
        default_factory=dict, description="Value per regime label or quadrant (label looked up first).")

    @field_validator("by_regime")
    @classmethod
    def _non_negative(cls, v: dict) -> dict:
        bad = sorted(str(k) for k, x in v.items() if x < 0)
        if bad:
            raise ValueError(f"negative value for {', '.join(bad)}")
        return v

    def resolve(self, label: str, quadrant: str) -> float:
        table = {str(k): float(x) for k, x in self.by_regime.items()}
        for key in (label, quadrant):
            if key in table:
                return table[key]
        return float(self.default)


def _default_adaptive_mapping() -> dict[RegimeLabel | Quadrant, Profile]:
    return {
        Quadrant.EXPANSION: Profile.MAX_SHARPE,
        Quadrant.INFLATIONARY_TREND: Profile.BARBELL,
        Quadrant.STAGNATION: Profile.MIN_VARIANCE,
        RegimeLabel.TURBULENT: Profile.HRP,
        RegimeLabel.CRISIS: Profile.HRP,
    }


class AdaptiveConfig(Strict):
    """Regime label or quadrant -> profile for the ``adaptive`` engine (label looked up first)."""

    mapping: dict[RegimeLabel | Quadrant, Profile] = Field(
        default_factory=_default_adaptive_mapping, description="Profile per regime label or quadrant.")
    default: Profile = Field(Profile.MIN_VARIANCE, description="Profile when no mapping entry applies.")

    @model_validator(mode="after")
    def _no_adaptive(self) -> AdaptiveConfig:
        if Profile.ADAPTIVE in (*self.mapping.values(), self.default):
            raise ValueError("tournament.adaptive cannot map a regime to the adaptive profile itself")
        return self


class BarbellConfig(Strict):
    """Barbell: core HRP plus an aggressor sleeve of the highest-mu symbols, its share set by regime."""

    aggressor_count: int = Field(3, ge=1, description="Symbols in the aggressor sleeve (highest mu).")
    aggressor_share: RegimeScaled = Field(description="Weight of the aggressor sleeve by regime.", default=RegimeScaled(
        default=0.2, by_regime={Quadrant.EXPANSION: 0.3, Quadrant.INFLATIONARY_TREND: 0.25,
                                RegimeLabel.TURBULENT: 0.1, RegimeLabel.CRISIS: 0.0}
    ))


class TournamentConfig(Strict):
    """The engine x profile candidates that compete on each rebalance date."""

    candidates: list[Candidate] = Field(
        default_factory=lambda: [
            Candidate(engine="custom", profile=Profile.MIN_VARIANCE),
            Candidate(engine="custom", profile=Profile.MAX_SHARPE),
            Candidate(engine="skfolio", profile=Profile.HRP),
            Candidate(engine="custom", profile=Profile.EQUAL_WEIGHT),
        ],
        min_length=1,
        description="The competing candidates (unique engine/profile pairs).",
    )
    constraints: Constraints = Constraints()
    risk_free_rate: float = Field(0.0, description="Annual risk-free rate (max_sharpe).")
    l2_gamma: RegimeScaled = Field(
        RegimeScaled(), description="L2 penalty gamma ||w||^2 by regime, e.g. 0.05 EXPANSION -> 0.15 CRISIS"
    )
    adaptive: AdaptiveConfig = AdaptiveConfig()
    barbell: BarbellConfig = BarbellConfig()
    book: Literal["long", "short", "long_short"] | None = Field(
        None, description="books traded: long (the long book), short (the short book, weights <= 0 summing to "
                          "-1) or long_short (both books: sum w = constraints.net, sum |w| <= constraints.gross); "
                          "default short when every scan is short, else long")

    @field_validator("candidates")
    @classmethod
    def _unique(cls, v: list[Candidate]) -> list[Candidate]:
        names = [c.name for c in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate candidates: {', '.join(dup)}")
        return v


class RebalanceConfig(Strict):
    """When the tournament decides; on other dates it carries the last decision forward."""

    rule: Literal["monthly", "weekly", "every_k_days", "drift"] = Field(
        "monthly", description="First partition date of each month or ISO week, or every k-th partition date "
                               "counted from `start`; `drift`: the tournament decides every date and the "
                               "backtest trades a candidate only when its drift exceeds `backtest.drift.threshold` "
                               "(the drift monitor's orders, `backtest.drift.mode`/`drift_band`), close execution.")
    every_k_days: int | None = Field(None, ge=1, description="k, for `rule: every_k_days`.")

    @model_validator(mode="after")
    def _k(self) -> RebalanceConfig:
        if self.rule == "every_k_days" and self.every_k_days is None:
            raise ValueError("rule every_k_days needs every_k_days")
        if self.rule != "every_k_days" and self.every_k_days is not None:  # it would be ignored
            raise ValueError(f"every_k_days is only read by rule every_k_days, not rule {self.rule}; remove it "
                             "or set rule: every_k_days")
        return self


class CostConfig(Strict):
    """Trading costs, charged on traded notional."""

    commission_bps: float = Field(1.0, ge=0.0, description="Commission in basis points of traded notional.")
    slippage_bps: float = Field(5.0, ge=0.0, description="Slippage in basis points of traded notional.")

    @property
    def rate(self) -> float:
        return (self.commission_bps + self.slippage_bps) / 1e4


class DriftMonitorConfig(Strict):
    """Daily drift monitor: drifted holdings vs the latest targets, and the orders that close the gap."""

    threshold: float = Field(0.05, gt=0.0, lt=1.0, description="order when sum |drifted - target| exceeds this")
    mode: Literal["partial", "full"] = Field(
        "partial", description="partial: trade only names off by more than backtest.drift_band; full: every name")
    candidate: str | None = Field(None, description="engine/profile to monitor (default: rank 1 of the leaderboard)")
    notional: float = Field(1_000_000.0, gt=0.0, description="portfolio value the order quantities are sized on")
    max_orders: int | None = Field(None, ge=1, description="most orders per day: clusters are restored through "
                                                          "their names in execution rank")
    max_traded: float | None = Field(None, gt=0.0, description="most traded notional per day, fraction of the book")
    instrument: Literal["primary", "alternative"] = Field(
        "primary", description="what each order trades: primary: the symbol; alternative: the catalog's "
        "alt_ticker of D (source.alternatives, e.g. the perpetual of a spot pair), the symbol when D lists none")


class FillModelConfig(Strict):
    """nautilus_trader's FillModel of the event-driven run that measures execution shortfall."""

    prob_slippage: float = Field(0.0, ge=0.0, le=1.0, description="probability a fill slips one tick against the order")
    prob_fill_on_limit: float = Field(1.0, ge=0.0, le=1.0, description="probability a resting limit order fills")
    random_seed: int = Field(0, ge=0, description="seed of the fill model (runs are reproducible)")


class ExecutionFeedbackConfig(Strict):
    """Calibrates the slippage the vectorized simulator charges to the implementation shortfall the
    event-driven (nautilus) run realizes, per asset class, point in time. With `paper.enabled` the same
    halflife, min_fills and bounds learn a suggested slippage from the paper account's fills."""

    enabled: bool = Field(False, description="measure shortfall with nautilus and update the slippage estimate")
    halflife: float = Field(5.0, gt=0.0, description="fill days after which a day's shortfall weighs half as much")
    min_fills: int = Field(20, ge=1, description="fills of a class needed before its estimate moves")
    min_bps: float = Field(0.0, description="lower bound of the slippage estimate (bps)")
    max_bps: float = Field(50.0, description="upper bound of the slippage estimate (bps)")
    tick: float = Field(0.01, gt=0.0, description="instrument price increment of the event-driven run")
    fill_model: FillModelConfig = FillModelConfig()

    @model_validator(mode="after")
    def _bounds(self) -> ExecutionFeedbackConfig:
        if not self.min_bps <= self.max_bps:
            raise ValueError(f"execution_feedback.min_bps {self.min_bps} must be <= max_bps {self.max_bps}")
        return self


class PaperConfig(Strict):
    """A paper account (opt-in): D's drift orders filled by nautilus_trader's simulated exchange at the next
    session's open; positions, cash, fills and P&L per date in the lake, sealed in the ledger. The slippage it
    suggests is learned from its fills with `backtest.execution_feedback`'s halflife, min_fills and bounds."""

    enabled: bool = Field(False, description="add the `paper` asset after `drift` (needs `rebalance.rule: drift`, "
                                             "`backtest.drift.candidate` and a source with open prices)")
    cash: float | None = Field(None, gt=0.0, description="starting cash (default: `backtest.drift.notional`, the "
                                                        "book the drift orders are sized on)")
    tick: float = Field(0.01, gt=0.0, description="instrument price increment of the simulated exchange")
    fill_model: FillModelConfig = FillModelConfig()


class BacktestConfig(Strict):
    """Walk-forward simulation of every candidate with drift and costs."""

    start: dt.date | None = Field(None, description="First day of the walk-forward (default: the partition start).")
    costs: CostConfig = CostConfig()
    costs_by_class: dict[str, CostConfig] = Field(
        default_factory=dict, description="costs per asset class (the catalog's type, e.g. stock, crypto)")
    borrow_bps_per_year: float = Field(0.0, ge=0.0, description="borrow cost on short notional (bps per year, "
                                                                "accrued per period, paid from cash)")
    borrow_bps_by_class: dict[str, float] = Field(
        default_factory=dict, description="borrow per asset class (the catalog's type, e.g. stock, crypto); "
                                          "other classes pay borrow_bps_per_year")
    execution: Literal["close", "next_open"] = Field("close", description="decision of D trades at D's close "
                                                                           "or at the next trading day's open")
    drift_band: float = Field(0.0, ge=0.0, lt=1.0, description="partial rebalancing: names within the band keep "
                                                                "their drifted weight (0: full rebalance)")
    delist_after_days: int | None = Field(5, ge=1, description="held names without a bar for more trading days "
                                                                "than this are sold at their last price")
    simulators: list[str] = Field(default_factory=lambda: ["vectorized"], min_length=1,
                                  description="simulators run in the pipeline: vectorized, vectorbt, cvxportfolio, "
                                              "nautilus (one leaderboard row per candidate and simulator)")
    pbo_blocks: int = Field(8, ge=2, le=16, description="blocks of the PBO cross-validation (even)")
    periods_per_year: int = Field(252, ge=1, description="Annualization factor of returns, volatility and Sharpe.")
    drift: DriftMonitorConfig = DriftMonitorConfig()
    execution_feedback: ExecutionFeedbackConfig = ExecutionFeedbackConfig()

    @field_validator("simulators")
    @classmethod
    def _simulators(cls, v: list[str]) -> list[str]:
        from tvquant_assets.core.simulators import SIMULATORS  # the registry only: no simulator is imported

        for name in v:
            SIMULATORS.info(name)  # an unknown name is a RegistryError (a ValueError) listing the registered ones
        if len(set(v)) != len(v):
            raise ValueError("simulators are listed twice")
        return v

    @model_validator(mode="after")
    def _feedback_needs_vectorized(self) -> BacktestConfig:
        others = [s for s in self.simulators if s != "vectorized"]
        if self.execution_feedback.enabled and others:
            raise ValueError(f"backtest.execution_feedback calibrates the vectorized simulator's costs over time; "
                             f"{', '.join(others)} cannot charge them: use simulators: [vectorized]")
        return self

    @field_validator("pbo_blocks")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"pbo_blocks {v} must be even")
        return v


class RegimePreset(Strict):
    """Overrides applied downstream while the regime (or quadrant) is active.

    The regime asset publishes the active preset of D as ``preset`` plus one ``preset_<field>`` column per
    field (NaN / "" when unset); selection applies ``top_n_per_cluster`` and ``max_symbols`` itself, the
    tournament reads ``preset_max_weight``, ``preset_l2_gamma`` and ``preset_profile``, and ``cluster_cap``
    from the preset named in ``preset``.
    """

    max_weight: float | None = Field(None, gt=0.0, le=1.0, description="per-asset weight cap")
    top_n_per_cluster: int | None = Field(None, ge=1, description="selection: most names per cluster")
    max_symbols: int | None = Field(None, ge=1, description="selection: size of the long book")
    l2_gamma: float | None = Field(None, ge=0.0, description="tournament: L2 (diversification) penalty")
    cluster_cap: float | None = Field(None, gt=0.0, le=1.0, description="tournament: largest weight of one cluster")
    profile: Profile | None = Field(None, description="tournament: profile the adaptive engine should use")


class QualityConfig(Strict):
    """Data-quality thresholds of the asset checks and the limits of the data_repair job."""

    max_abs_log_return: float = Field(
        0.7, gt=0.0, description="|ln(close / previous close)| above this is an extreme return (warning)."
    )
    stale_bars: int = Field(10, ge=2, description="A close unchanged over this many consecutive bars is stale.")
    max_fill_bars: int = Field(
        3, ge=0, description="Repair carries the last good bar forward over at most this many consecutive bars; "
        "a longer run excludes the symbol on those dates (reason recorded in the catalog)."
    )
    min_selected: int = Field(
        1, ge=0, description="Fewer selected symbols than this fails the selection check when the scan had enough."
    )
    weight_tolerance: float = Field(1e-6, gt=0.0, description="Tolerance of the weights-sum and cap checks.")


class ScheduleConfig(Strict):
    """When the daily run of the newest partition starts: after the market close, in the market's timezone."""

    cron: str | None = Field(
        None, description="Cron in `timezone` (default: 17:30 on weekdays for weekdays, 00:30 daily for daily)."
    )
    timezone: str = Field("America/New_York", description="IANA timezone of the cron and of the partition date.")
    running: bool = Field(False, description="Start the schedules running when the code location loads.")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone {v!r} (e.g. America/New_York, UTC)") from None
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None and len(v.split()) != 5:
            raise ValueError(f"cron {v!r} must have 5 fields (minute hour day month weekday)")
        return v


class BenchmarkConfig(Strict):
    """What the backtest is measured against: one of a universe symbol, a file or a bundled series."""

    symbol: str | None = Field(None, description="A symbol of the source (its closes from the price lake).")
    file: str | None = Field(None, description="CSV or parquet with date and close columns (relative to the "
                                               "manifest's folder).")
    bundled: Literal["sp500_index"] | None = Field(None, description="`sp500_index`: skfolio's S&P 500 index "
                                                                     "closes, 1990-2022, offline.")
    name: str | None = Field(None, description="Label in the tearsheet (default: the symbol, file or series).")

    @model_validator(mode="after")
    def _one(self) -> BenchmarkConfig:
        given = [k for k in ("symbol", "file", "bundled") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of symbol, file, bundled" + (f" (got {', '.join(given)})" if given
                                                                             else ""))
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.symbol:
            return self.symbol
        if self.bundled:
            return {"sp500_index": "S&P 500"}[self.bundled]
        import os

        return os.path.basename(str(self.file)).split(".")[0]


class Manifest(Strict):
    """One pipeline instance: a universe, a strategy and where its data comes from."""

    name: str = Field(..., pattern=NAME_PATTERN, description="Lake folder and asset key prefix.")
    description: str = Field("", description="Free text shown in the UI and the tearsheet.")
    source: SourceConfig = Field(default_factory=BundledSourceConfig, discriminator="kind",
                                 description="Where prices come from; `kind` picks the source.")
    calendar: Literal["weekdays", "daily"] = Field(
        "weekdays", description="Partition dates: weekdays (equities; holidays come from the data) or every day.")
    start: dt.date = Field(..., description="First partition date.")
    universe: UniverseConfig = UniverseConfig()
    selection: SelectionConfig = SelectionConfig()
    regime: RegimeConfig = RegimeConfig()
    estimation: EstimationConfig = EstimationConfig()
    tournament: TournamentConfig = TournamentConfig()
    rebalance: RebalanceConfig = RebalanceConfig()
    backtest: BacktestConfig = BacktestConfig()
    regime_presets: dict[RegimeLabel | Quadrant, RegimePreset] = Field(
        default_factory=dict, description="Overrides while a regime label or quadrant is active, e.g. "
                                          "`CRISIS: {max_weight: 0.2}`.")
    quality: QualityConfig = QualityConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    benchmark: BenchmarkConfig | None = Field(None, description="Backtest metrics against it (excess return, "
                                              "alpha, beta, tracking error, information ratio, up/down capture).")
    paper: PaperConfig = PaperConfig()

    @field_validator("universe")
    @classmethod
    def _symbols(cls, v: UniverseConfig) -> UniverseConfig:
        for s in v.symbols or []:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,40}", s):
                raise ValueError(f"symbol {s!r} has characters other than letters, digits, '.', '_', ':', '-'")
        return v

    @model_validator(mode="after")
    def _backtest_start(self) -> Manifest:
        if self.backtest.start is not None and self.backtest.start < self.start:
            raise ValueError(f"backtest.start {self.backtest.start} is before start {self.start}")
        return self

    @model_validator(mode="after")
    def _drift_candidate(self) -> Manifest:
        wanted = self.backtest.drift.candidate
        names = [c.name for c in self.tournament.candidates]
        if wanted is not None and wanted not in names:
            raise ValueError(f"backtest.drift.candidate {wanted!r} is not a tournament candidate ({', '.join(names)})")
        return self

    @model_validator(mode="after")
    def _benchmark_symbol(self) -> Manifest:
        b, symbols = self.benchmark, self.universe.symbols
        if b is not None and b.symbol is not None and symbols and b.symbol not in symbols:
            raise ValueError(f"benchmark.symbol {b.symbol!r} is not in universe.symbols")
        return self

    def catalog_needs(self) -> dict[str, str]:
        """Manifest fields that read a catalog column: {field: column}."""
        out = {}
        if self.selection.max_per_sector is not None:
            out["selection.max_per_sector"] = "sector"
        if self.selection.sector_tilt:
            out["selection.sector_tilt"] = "sector"
        if self.backtest.costs_by_class:
            out["backtest.costs_by_class"] = "type"
        return out

    @model_validator(mode="after")
    def _files_catalog(self) -> Manifest:
        needs = self.catalog_needs()
        if self.source.kind == "files" and self.source.catalog is None and needs:
            raise ValueError(f"{', '.join(needs)} read the catalog's {', '.join(sorted(set(needs.values())))}; "
                             "a files source without source.catalog has none: add a catalog file or drop them")
        return self

    @model_validator(mode="after")
    def _drift_rule(self) -> Manifest:
        if self.rebalance.rule != "drift":
            return self
        d = self.backtest.drift
        limits = [f for f, v in (("backtest.drift.max_orders", d.max_orders), ("backtest.drift.max_traded",
                                                                              d.max_traded)) if v is not None]
        if limits:
            raise ValueError(f"rebalance.rule drift simulates the drift orders; {' and '.join(limits)} (execution "
                             "ranking limits) cannot be simulated by the backtest: unset them or use another rule")
        if self.backtest.execution != "close":
            raise ValueError("rebalance.rule drift trades the drift orders at D's close; backtest.execution "
                             f"{self.backtest.execution} is not supported: use execution: close")
        if self.backtest.execution_feedback.enabled:
            raise ValueError("rebalance.rule drift with backtest.execution_feedback.enabled: the event-driven fills "
                             "would trade every decision, not the drift-gated ones; turn one of them off")
        return self

    @model_validator(mode="after")
    def _paper(self) -> Manifest:
        if not self.paper.enabled:
            return self
        if self.rebalance.rule != "drift":
            raise ValueError(f"paper.enabled trades the drift monitor's orders, which are every trade of the book "
                             f"only with rebalance.rule drift (got {self.rebalance.rule}): set rule: drift")
        if self.backtest.drift.candidate is None:
            raise ValueError("paper.enabled trades one candidate's drift orders and the leaderboard's leader can "
                             "change from day to day: set backtest.drift.candidate")
        if self.source.kind == "bundled":
            raise ValueError("paper.enabled fills orders at the next open and source bundled has close prices only: "
                             "use a source with opens (synthetic, files with an open column, tradingview)")
        return self

    @property
    def backtest_start(self) -> dt.date:
        return self.backtest.start or self.start

    @property
    def book(self) -> str:
        """The books the strategy trades: ``tournament.book``, else short when every scan is short, else long."""
        if self.tournament.book is not None:
            return self.tournament.book
        scans = getattr(self.source, "scans", None)
        return "short" if scans and all(s.direction == "short" for s in scans) else "long"
