"""Price partitions whose source data changed after they were written (an edited historical row).

The prices stage is recomputed in memory for every partition the lake holds and each ``df_hash`` is
compared with the stored one: a changed hash names the partition and the symbols whose bars differ. The
lake keeps what was written and decided on; nothing is rewritten here (re-running the dates, e.g.
``tvquant backfill``, writes the new bars and the audit stage appends superseding ledger entries).
"""

from __future__ import annotations

import pandas as pd

from tvquant_assets.hashing import df_hash
from tvquant_assets.quality import CheckReport, Finding
from tvquant_assets.stages import prices
from tvquant_assets.stages.context import RunContext

NAME = "source_unchanged"


def _differing_symbols(old: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    fields = [c for c in old.columns if c not in ("date", "symbol")]
    a, b = old.set_index("symbol")[fields], new.set_index("symbol")[fields]
    syms = sorted(set(a.index) ^ set(b.index))
    both = sorted(set(a.index) & set(b.index))
    if both:
        x, y = a.loc[both], b.reindex(both)[fields]
        diff = ~((x == y) | (x.isna() & y.isna())).all(axis=1)
        syms += list(diff[diff].index)
    return sorted(set(syms))


def check_source_unchanged(ctx: RunContext, upto=None) -> CheckReport:
    """Every prices partition of the lake (dated <= ``upto``) vs what the source says for it now."""
    dates = [d for d in ctx.lake.partitions(ctx.name, "prices") if upto is None or d <= pd.Timestamp(upto)]
    dates = [d for d in dates if ctx.lake.exists(ctx.name, "catalog", d)]
    report = CheckReport(NAME, len(dates))
    if not dates:
        return report
    stored = ctx.lake.read_many(ctx.name, "prices", dates)
    fresh = prices.run(ctx, dates).frames
    for d in dates:
        old, old_hash = stored[d]
        new = fresh[d]
        if df_hash(new) != old_hash:
            syms = _differing_symbols(old, new)
            shown = ", ".join(syms[:5]) + (f" (+{len(syms) - 5})" if len(syms) > 5 else "")
            report.findings.append(Finding(d, syms[0] if len(syms) == 1 else "",
                                           f"source bars changed since the partition was written ({shown or 'order'})"))
    return report
