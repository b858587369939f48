"""What each book requires, without importing an optimization library (manifest validation, the
``tournament_weights`` check): which engine/profile may run on which book, and the limits of a candidate's
weights. The fitting itself is :mod:`tvquant_assets.core.book_fit`."""

from __future__ import annotations

from dataclasses import dataclass

BOOKS = ("long", "short", "long_short")
JOINT_PROFILES = ("min_variance", "max_sharpe", "market_neutral")
"""Profiles optimized jointly over both books (sign per book) on book long_short, by the engines whose
registry line lists them in ``joint`` (never per book)."""
ONE_BOOK_EMPTY = "one_book_empty"


@dataclass(frozen=True)
class BookLimits:
    """What a candidate's weights must satisfy: ``book`` long (w >= 0, sum 1), short (w <= 0, sum -1) or
    long_short (``sum(w) = net``, ``sum(|w|) <= gross``); every book ``|w| <= max_weight``."""

    book: str
    net: float = 1.0
    gross: float = 1.0


def candidate_limits(book: str, engine: str, profile: str, constraints) -> BookLimits:
    """The limits of one candidate under the manifest's book (``constraints``: ``tournament.constraints``)."""
    from tvquant_assets.core.engines import ENGINES

    c = constraints
    if book == "short":
        return BookLimits("short", -1.0, 1.0)
    if book == "long_short":
        return BookLimits("long_short", 0.0 if profile == "market_neutral" else float(c.net), float(c.gross))
    if profile == "market_neutral":
        return BookLimits("long_short", 0.0, float(c.gross))
    if not c.long_only and engine in ENGINES and profile in ENGINES.info(engine).long_short:
        return BookLimits("long_short", float(c.net), float(c.gross))
    return BookLimits("long", 1.0, 1.0)


def book_refusal(engine: str, profile: str, book: str) -> str:
    """Why ``engine/profile`` cannot run on ``book`` ("" when it can)."""
    if book == "long":
        return ""
    if profile == "market_neutral" and book == "short":
        return "market_neutral holds both sides; use tournament.book long_short"
    if engine == "adaptive" and book == "long_short":
        return "adaptive switches profiles by regime; on book long_short list the profiles as candidates"
    if book == "long_short" and profile in JOINT_PROFILES:
        from tvquant_assets.core.engines import ENGINES

        if engine in ENGINES and profile not in ENGINES.info(engine).joint:
            can = [e for e in ENGINES if profile in ENGINES.info(e).joint]
            return f"{engine} cannot solve {profile} over both books (engines that can: {', '.join(can)})"
    return ""
