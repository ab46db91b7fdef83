"""Where border-post weeks miss: coverage by whether the post's non-declarer pool saw a
heavy load (assessed >= ``HEAVY_CENTS``), on the cached worlds of ``bench.accuracy``.

A post-week's non-declarer mean comes from a few dozen inspections over +-2 weeks, and the
heavy loads (traders) are a Poisson handful among them: in about 45% of post-weeks the pool
saw none. Groups (over both traveller groups of the post):

* ``none-any-week``: no heavy load among the post's random inspections in any week;
* ``none-in-window``: some in other weeks, none in the +-2-week pool;
* ``seen``: at least one in the +-2-week pool.

Per group: cells, coverage, share of cells with the interval below the truth (``below``)
and above it, median relative half-width, the standardized log error
``k = log(truth / estimate) / (z s)`` (``|k| > 1`` is a miss; its quantiles say by how much
the log half-width would have to grow on each side), and the aggregate relative bias
``sum(estimate) / sum(truth) - 1``.

Run: ``.venv/bin/python -m bench.post_misses --worlds 40 --cache DIR`` (and ``--heldout
--worlds 12``); the worlds must be in the cache (``bench.accuracy`` simulates them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from bench.accuracy import table, world_dir, world_tables
from estimators.estimate import _Index
from estimators.reference import BORDER_POSTS

Z = 1.959963984540054


def world_rows(cache: Path, seed: int, prior) -> pl.DataFrame:
    """Post-week rows of one world: estimate, interval, truth, heavy loads in the pools."""
    d = world_dir(cache, seed, 12, 0.2, prior)
    tables = world_tables(d)
    est = tables.estimate().filter(domain="border_post")
    index = _Index(tables.strata)
    groups = sorted({g for _, g in index.cells})
    heavy = []
    for week in index.weeks:
        for post in BORDER_POSTS:
            win = sum(int(index.pooled("post", post, g, week, 2).n_heavy.sum()) for g in groups)
            every = sum(int(index.pooled("post", post, g, week, None).n_heavy.sum()) for g in groups)
            heavy.append((week, post, win, every))
    heavy = pl.DataFrame(heavy, schema=["week", "key", "heavy_window", "heavy_all_weeks"], orient="row")
    truth = pl.read_parquet(d / "truth.parquet")
    return (est.join(truth, on=["week", "domain", "key"], how="left").join(heavy, on=["week", "key"], how="left")
            .with_columns(seed=pl.lit(seed)))


def summary(rows: pl.DataFrame, by: str) -> pl.DataFrame:
    y, e, lo, hi = (pl.col(c) for c in ("value_usd", "estimate_usd", "ci_low_usd", "ci_high_usd"))
    s = ((1 + (pl.col("std_error_usd") / e) ** 2).log()).sqrt()
    k = ((y / e).log() / (Z * s)).filter((y > 0) & (e > 0))
    return rows.group_by(by).agg(
        cells=pl.len(),
        coverage=((lo <= y) & (y <= hi)).fill_null(False).mean(),
        below=(hi < y).mean(),
        above=(lo > y).mean(),
        median_rel_halfwidth=((hi - lo) / 2 / y).filter(y > 0).median(),
        k_median=k.median(),
        k_q025=k.quantile(0.025),
        k_q975=k.quantile(0.975),
        bias=e.sum() / y.sum() - 1,
    ).sort(by)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worlds", type=int, default=40)
    p.add_argument("--heldout", action="store_true")
    p.add_argument("--cache", type=Path, required=True)
    a = p.parse_args(argv)
    first = 10_001 if a.heldout else 1
    prior = "heldout" if a.heldout else True
    rows = pl.concat([world_rows(a.cache, s, prior) for s in range(first, first + a.worlds)])
    rows = rows.with_columns(
        pool=pl.when(pl.col("heavy_all_weeks") == 0).then(pl.lit("none-any-week"))
        .when(pl.col("heavy_window") == 0).then(pl.lit("none-in-window")).otherwise(pl.lit("seen")),
        mode=pl.col("key").replace_strict({k: v["mode"] for k, v in BORDER_POSTS.items()}),
    )
    print(f"{a.worlds} worlds ({'held-out' if a.heldout else 'prior'}), border-post weeks\n")
    print(table(summary(rows, "pool")))
    print()
    print(table(summary(rows, "mode")))
    all_ = summary(rows.with_columns(all=pl.lit("all")), "all")
    print()
    print(table(all_))


if __name__ == "__main__":
    main()
