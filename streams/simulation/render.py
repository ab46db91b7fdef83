"""JSON lines in bulk: polars string formatting over whole columns, no per-event objects.

Ids and codes are plain ASCII made by the simulator, so lines need no escaping; amounts are
kept as integers in minor units and printed as exact decimals.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl

from streams.simulation.world import CURRENCIES, DECIMALS

TS: Final = "%Y-%m-%dT%H:%M:%S+03:30"


def brace_template(text: str) -> str:
    """A JSON line template with ``§`` for fields, in pl.format's brace syntax."""
    return text.replace("{", "{{").replace("}", "}}").replace("§", "{}")


def json_line(template: str, *cols: pl.Expr | str) -> pl.Expr:
    """One JSON line per row: ``template`` with each ``§`` filled by the next column."""
    return pl.format(brace_template(template), *cols)


def event_time_json(col: str = "t") -> pl.Expr:
    """RFC 3339 with the Tehran offset, from local seconds."""
    return pl.from_epoch(pl.col(col), time_unit="s").dt.strftime(TS)


def amount_json(minor: str, currency: str) -> pl.Expr:
    """JSON number in major units: whole units for IRR/IQD, two decimals otherwise."""
    v = pl.col(minor)
    dec = pl.col(currency).replace_strict(list(CURRENCIES), list(DECIMALS), return_dtype=pl.Int8)
    return (pl.when(dec == 0).then(v.cast(pl.String))
            .otherwise(pl.format("{}.{}", (v // 100).cast(pl.String),
                                 (v % 100).cast(pl.String).str.zfill(2))))


def join_items(parents: int, pos: np.ndarray, items: pl.Series) -> pl.Series:
    """Comma-joined item objects per parent row (empty string for none)."""
    joined = (pl.DataFrame({"pos": pos, "item": items})
              .group_by("pos", maintain_order=True).agg(pl.col("item").str.join(",")))
    return (pl.DataFrame({"pos": np.arange(parents)})
            .join(joined, on="pos", how="left").sort("pos")["item"].fill_null(""))


def codes_of(table: tuple[str, ...], idx: np.ndarray) -> np.ndarray:
    """Codes of a table by index, as a numpy string array."""
    return np.asarray(table)[idx]


def quoted(values: np.ndarray) -> np.ndarray:
    """JSON strings of plain ASCII values (no escaping needed)."""
    return np.strings.add(np.strings.add('"', values), '"')
