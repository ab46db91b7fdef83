"""The pooled-ratio estimate pinned to a frozen output: the vectorised estimator gives
every column of the code it replaced, to the last bit, under each option that changes
which code runs.

Frozen inputs: the observations of a small simulated world (seed 11, 3 weeks, scale
0.02, with faults) in their versioned encoding (:class:`estimators.encoding.Observations`,
zlib-compressed), so a change of the simulator or archive reader does not move them; and
the estimate frames the code before vectorisation made from them (one per option set).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import msgspec
import polars as pl
import pytest

from estimators import Tables
from estimators.encoding import Observations

FIXTURES = Path(__file__).parent / "fixtures"

#: Option sets covering each branch the estimator's hot loops take.
OPTIONS = {
    "default": {},
    "local": {"variance": "local"},
    "heavy": {"heavy": ("mode", 4)},
    "cb": {"robust": "cb"},
    "gap": {"robust": "gap"},
    "thin": {"min_sample": 40, "min_category": 8, "window": 1},
    "percentile-period": {"interval": "percentile", "period": True},
}


@pytest.fixture(scope="module")
def tables():
    raw = zlib.decompress((FIXTURES / "estimate-frozen-observations.msgpack.z").read_bytes())
    t = Tables()
    t.update_many(list(msgspec.msgpack.decode(raw, type=Observations)))
    return t


@pytest.mark.parametrize("name", list(OPTIONS))
def test_estimate_equals_frozen_output(tables, name):
    frozen = pl.read_parquet(FIXTURES / "estimate-frozen-output.parquet").filter(options=name).drop("options")
    out = tables.estimate(**OPTIONS[name])
    assert frozen.height > 0
    assert out.columns == frozen.columns
    for column in frozen.columns:
        assert out[column].equals(frozen[column]), column
