"""What tourist-card spend could do as a unit-level auxiliary (issue 10 item 3), before
building a difference / GREG estimator for it: among the random non-declarer inspections of
a world, the HT-weighted R^2 of the assessed value on ``x`` = the traveller's net
tourist-card handicraft spend in the 14 days before the departure
(:func:`streams.pipeline.travellers.card_cents`, payments priced by ``payment_seen``). A
difference estimator ``Y_0 = B X + sum_w (a_i - B x_i)`` has about ``1 - R^2`` of the
variance of the plain mean.

Run: ``.venv/bin/python -m bench.card_auxiliary 1 3 8 15`` (seeds of
``bench.accuracy.world_prior``, 12 weeks at scale 0.2, archives cached under ``--cache``
as bench.accuracy does; one decoded event at a time, slow but independent of the archive
reader).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import polars as pl


def r_squared(d: Path) -> tuple[int, int, float]:
    """(random non-declarer inspections, how many with card spend, weighted R^2)."""
    from streams.pipeline import contract as c
    from streams.pipeline.crossings import payment_seen, priced_inspection
    from streams.pipeline.fx import RateBook
    from streams.pipeline.travellers import card_cents, traveller_codes

    def events(topic, only: bytes | None = None):
        for raw in (d / f"{topic}.ndjson").read_bytes().splitlines():
            if only is None or only in raw:
                e = c.decode(topic, raw)
                if type(e) is not c.Rejection:
                    yield e

    rates = RateBook()
    for r in events(c.RATES):
        rates.add(r.currency, r.event_time.timestamp(), r.event_id, r.units_per_usd)
    pays = []
    for p in events(c.PAYMENTS, b'"card_type":"tourist"'):
        seen = payment_seen(p, rates)
        if seen is not None and seen.handicraft:
            pays.append((p.traveller_id, p.event_time.timestamp(), seen.amount_cents))
    insp = [i for i in events(c.INSPECTIONS) if i.selection == "random" and not i.declared]
    wanted = {i.crossing_id for i in insp}
    dep = {}
    for e in events(c.DEPARTURES):
        if e.crossing_id in wanted and e.crossing_id not in dep:
            dep[e.crossing_id] = e
    rows = []
    for i in insp:
        priced = priced_inspection(i, rates)
        if i.crossing_id in dep and priced is not None:
            e = dep[i.crossing_id]
            rows.append((e.traveller_id, e.event_time.timestamp(), sum(priced.assessed_cents), 1 / i.selection_probability))
    code, pay_code = traveller_codes(pl.Series([r[0] for r in rows], dtype=pl.String),
                                     pl.Series([p[0] for p in pays], dtype=pl.String))
    x = card_cents(code, np.array([r[1] for r in rows]), pay_code, np.array([p[1] for p in pays]),
                   np.array([p[2] for p in pays], dtype=np.int64)).astype(float)
    a = np.array([r[2] for r in rows], dtype=float)
    w = np.array([r[3] for r in rows])
    mx, ma = np.average(x, weights=w), np.average(a, weights=w)
    vx, va = np.average((x - mx) ** 2, weights=w), np.average((a - ma) ** 2, weights=w)
    cov = np.average((x - mx) * (a - ma), weights=w)
    return len(rows), int((x != 0).sum()), float(cov * cov / (vx * va)) if vx > 0 and va > 0 else 0.0


def main(argv: list[str] | None = None) -> None:
    from bench.accuracy import world_dir

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("seeds", type=int, nargs="+")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "suitcase-bench")
    a = p.parse_args(argv)
    print("| seed | random non-declarer inspections | with card spend | weighted R^2 | variance vs plain mean |")
    print("|---|---|---|---|---|")
    for seed in a.seeds:
        n, k, r2 = r_squared(world_dir(a.cache, seed, 12, 0.2))
        print(f"| {seed} | {n} | {k} | {r2:.4f} | {1 - r2:.3f} |", flush=True)


if __name__ == "__main__":
    main()
