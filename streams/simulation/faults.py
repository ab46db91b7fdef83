"""The fault model of a simulated feed: late, duplicated, shuffled and malformed lines.

It draws from its own random stream and only rearranges or adds lines, so turning faults on
never changes the world or its truth.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import TYPE_CHECKING, Final

import msgspec
import numpy as np

from streams.pipeline.contract import (
    DECLARATIONS,
    DEPARTURES,
    EXPORTS,
    INSPECTIONS,
    PAYMENTS,
    TOPICS,
)
from streams.pipeline.contract import RATES as FX_RATES
from streams.simulation.draws import (
    NS_EV_FAULT,
    STREAM_FAULTS,
    id_key,
    pseudonyms,
    random_stream,
)

if TYPE_CHECKING:
    from streams.simulation.day import World

_LATE_TOPICS: Final = frozenset({DEPARTURES, DECLARATIONS, INSPECTIONS})
_EVENT_PREFIX: Final = {DEPARTURES: "BD", DECLARATIONS: "TD", INSPECTIONS: "CI", EXPORTS: "CE",
                        PAYMENTS: "PT", FX_RATES: "fx-"}


class Faults:
    """The fault model: late, duplicated, shuffled and malformed lines, from its own random
    stream so that turning faults on never changes the world or its truth."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.later: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.duplicates = self.late = self.malformed = 0

    def apply(self, day: int, batches: dict[str, list[str]]) -> dict[str, list[str]]:
        """The lines published on window day ``day``: its own lines less those held back,
        plus lines held back earlier, duplicates and malformed twins, in shuffled order.
        Nothing is held past the last day, so every event reaches the files."""
        cfg = self.w.config
        last = cfg.days - 1
        rng = random_stream(cfg.seed, STREAM_FAULTS, (cfg.start + dt.timedelta(day)).toordinal())
        arrived = self.later.pop(day, {})
        out: dict[str, list[str]] = {}
        n_bad = 0
        for topic in TOPICS:
            own = batches[topic]
            n = len(own)
            extras: list[str] = list(arrived.get(topic, []))
            keep = np.ones(n, dtype=bool)
            if topic in _LATE_TOPICS and day < last:
                late = np.flatnonzero(rng.random(n) < cfg.late_rate)
                delay = rng.integers(1, cfg.max_delay_days + 1, len(late))
                for i, dd in zip(late, delay, strict=True):
                    self.later[min(day + int(dd), last)][topic].append(own[i])
                keep[late] = False
                self.late += len(late)
            dup = np.flatnonzero(rng.random(n) < cfg.duplicate_rate)
            delay = np.where(rng.random(len(dup)) < 0.7, 0, rng.integers(1, 6, len(dup)))
            for i, dd in zip(dup, delay, strict=True):
                target = min(day + int(dd), last)
                (extras if target == day else self.later[target][topic]).append(own[i])
            self.duplicates += len(dup)
            bad = np.flatnonzero(rng.random(n) < cfg.malformed_rate)
            keys = id_key(NS_EV_FAULT, self.w.first_day + day, n_bad + np.arange(len(bad)))
            new_ids = pseudonyms(_EVENT_PREFIX[topic], keys, self.w.salt)
            for i, new_id in zip(bad, new_ids, strict=True):
                extras.append(_malform(own[i], topic, int(rng.integers(0, 6)), str(new_id), rng))
            n_bad += len(bad)
            self.malformed += len(bad)
            lines = [own[i] for i in np.flatnonzero(keep)] + extras
            # extras land anywhere in the day; then a few lines swap places
            order_key = np.r_[np.arange(int(keep.sum()), dtype=float),
                              rng.uniform(0, max(int(keep.sum()), 1), len(extras))]
            order = np.argsort(order_key, kind="stable")
            moved = np.flatnonzero(rng.random(len(order)) < cfg.shuffle_rate)
            if topic != FX_RATES:  # a rate feed publishes each currency in time order
                order[moved] = order[rng.permutation(moved)]
            out[topic] = [lines[i] for i in order]
        return out


_REQUIRED: Final = {
    DEPARTURES: ("event_id", "crossing_id", "border_post", "resident", "destination_country"),
    DECLARATIONS: ("event_time", "crossing_id", "items", "border_post"),
    INSPECTIONS: ("event_time", "selection", "declared", "items", "crossing_id"),
    EXPORTS: ("declaration_id", "items", "event_time", "border_post"),
    PAYMENTS: ("card_id", "amount", "currency", "kind", "event_time"),
    FX_RATES: ("currency", "units_per_usd", "event_time"),
}
_AMOUNT_FIELD: Final = {DECLARATIONS: "value", INSPECTIONS: "assessed_value", EXPORTS: "value",
                        PAYMENTS: "amount", FX_RATES: "units_per_usd"}


def _malform(line: str, topic: str, kind: int, new_id: str, rng: np.random.Generator) -> str:
    """A rejected twin of ``line``: broken JSON, missing field, wrong type, unknown code,
    negative amount or a timestamp without offset (kinds 0..5), under a fresh event_id."""
    if kind == 0:
        return line[: int(rng.integers(1, len(line) - 1))]
    obj = msgspec.json.decode(line)
    obj["event_id"] = new_id
    items = obj.get("items") or []
    if kind == 3 and "border_post" in obj:
        obj["border_post"] = "ZZZ"
    elif kind == 3 and items and "category" in items[0]:
        items[0]["category"] = "plastic"
    elif kind == 4 and topic in _AMOUNT_FIELD and (topic in (PAYMENTS, FX_RATES) or items):
        target = obj if topic in (PAYMENTS, FX_RATES) else items[0]
        target[_AMOUNT_FIELD[topic]] = -abs(target[_AMOUNT_FIELD[topic]]) - 1
    elif kind == 5:
        obj["event_time"] = obj["event_time"][:19]
    elif kind == 2:
        obj["schema_version"] = "1"
    else:
        fields = _REQUIRED[topic]
        del obj[fields[int(rng.integers(0, len(fields)))]]
    return msgspec.json.encode(obj).decode()
