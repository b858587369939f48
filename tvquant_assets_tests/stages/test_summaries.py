"""The UI summaries of stage partitions (each stage module's ``summary``), built from frames directly."""

import pandas as pd

from tvquant_assets.stages.tournament import summary as _tournament


def test_tournament_summary_lists_candidates_before_any_symbol_qualifies():
    # Early dates hold one empty-universe row (symbol "") per candidate; this used to raise in groupby.apply.
    frame = pd.DataFrame({"candidate": ["custom/hrp", "custom/min_variance"], "symbol": ["", ""],
                          "weight": [0.0, 0.0], "status": ["empty", "empty"]})
    out = _tournament(frame)
    assert out["candidates"] == 2
    assert "| custom/hrp | empty | 0 | 0.0% |  |" in out["summary"]


def test_tournament_summary_counts_holdings_and_names_the_largest():
    frame = pd.DataFrame({"candidate": ["a", "a", "a", "b"], "symbol": ["X", "Y", "Z", "X"],
                          "weight": [0.3, 0.7, 0.0, 1.0], "status": ["ok"] * 4})
    text = _tournament(frame)["summary"]
    assert "| a | ok | 2 | 70.0% | Y |" in text
    assert "| b | ok | 1 | 100.0% | X |" in text
