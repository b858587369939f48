"""``core/frames``: the cores' frames built in their dtypes equal what ``astype`` and one-row frames give."""

import numpy as np
import pandas as pd
from pandas.testing import assert_frame_equal

from tvquant_assets.core.frames import frame_of, one_row_frames, typed
from tvquant_assets.hashing import df_hash

DTYPES = {"name": "string", "n": "int64", "x": "float64", "label": "str", "on": "bool"}


def test_typed_converts_only_what_differs_and_returns_a_typed_frame_as_it_is():
    built = pd.DataFrame({"name": pd.array(["a"], dtype="string"), "n": [1], "x": [0.5], "label": ["b"],
                          "on": [True]})
    assert typed(built, DTYPES) is built
    loose = pd.DataFrame({"name": ["a"], "n": [1.0], "x": [1], "label": ["b"], "on": [True]})
    assert_frame_equal(typed(loose, DTYPES), loose.astype(DTYPES))


def test_frame_of_equals_the_inferred_frame_converted():
    rows = [{"name": "a", "n": 1, "x": None, "label": "b", "on": True},
            {"name": None, "n": 2, "x": np.float64(0.25), "label": np.nan, "on": False}]
    for part in (rows, rows[:1], []):
        ours, theirs = frame_of(part, DTYPES), pd.DataFrame(part, columns=list(DTYPES)).astype(DTYPES)
        assert_frame_equal(ours, theirs)
        assert df_hash(ours) == df_hash(theirs)


def test_one_row_frames_equal_one_frame_per_row():
    day = pd.Timestamp("2020-01-02")
    rows = {0: {"date": day, "seq": 1, "h": "a" * 64}, 1: {"date": day + pd.Timedelta(days=1), "seq": 2, "h": "b"},
            2: {"date": day, "seq": 3, "h": None},  # another type in a column: a layout of its own
            3: {"date": day, "seq": 4},  # another column set
            4: {"date": pd.Timestamp("2020-01-03").as_unit("s"), "seq": 5, "h": "c"},  # another unit
            5: {"date": day, "seq": 6, "h": "d", "x": 0.5}}
    frames = one_row_frames(rows)
    assert list(frames) == list(rows)
    for key, row in rows.items():
        alone = pd.DataFrame([row])
        assert_frame_equal(frames[key], alone)
        assert df_hash(frames[key]) == df_hash(alone), key
