"""Accuracy of the weekly estimates against simulated truth: coverage, error, width.

Simulates ``--worlds`` seeded worlds (``--weeks`` weeks at ``--scale``; archives cached
under ``--cache``), estimates each from its archive through the batch path
(:func:`streams.batch.build_tables`), and compares with ``truth.parquet``:

* coverage of the 95% interval for weekly totals and for category-week cells;
* error of the period total (sum of weekly estimates over the world's weeks);
* median relative half-width of the weekly-total intervals;

for (a) ours (:func:`estimators.estimate_weeks`), (b) the naive sum of declared values,
(c) the textbook per-week stratified ratio estimator (:func:`estimators.textbook_weeks`),
side by side as a markdown table, with ours over textbook as a ratio.

Targets (issue "Estimators"): coverage 0.92-0.98 for weekly totals, >= 0.90 for
category-week cells; median half-width at least 25% narrower than textbook; period-total
error within 5% on every world.

Run: ``.venv/bin/python -m bench.accuracy --worlds 20``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

TARGETS = {"cov_total": (0.92, 0.98), "cov_category": 0.90, "width_vs_textbook": 0.75, "period_error": 0.05}


def world_dir(cache: Path, seed: int, weeks: int, scale: float) -> Path:
    """The cached archive of one world, simulated on first use."""
    out = cache / f"seed{seed}-w{weeks}-s{scale}"
    if not (out / "truth.parquet").exists():
        from streams.simulator import WorldConfig, simulate

        simulate(out, WorldConfig(seed=seed, weeks=weeks, scale=scale))
    return out


def state_version() -> str:
    """Digest of the estimator code that decides what the states hold (a cached state is
    reused only while it is unchanged; delete the cache after changing how archives are
    read)."""
    import hashlib

    root = Path(__file__).resolve().parent.parent
    files = ["estimators/observations.py", "estimators/state.py", "estimators/replicates.py",
             "estimators/disclosure.py", "estimators/tables.py"]
    h = hashlib.blake2b(digest_size=6)
    for f in files:
        h.update((root / f).read_bytes())
    return h.hexdigest()


def world_tables(d: Path):
    """The states of a cached world, built from its archive on first use, then pickled."""
    import pickle

    from streams.batch import build_tables

    path = d / f"tables-{state_version()}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    tables, _ = build_tables(d)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(pickle.dumps(tables, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.rename(path)
    return tables


def evaluate_world(args) -> tuple[pl.DataFrame, dict]:
    """Rows (method, week, domain, key, estimate, ci, truth) and timings of one world."""
    cache, seed, weeks, scale, options = args
    t0 = time.perf_counter()
    d = world_dir(cache, seed, weeks, scale)
    t1 = time.perf_counter()
    tables = world_tables(d)
    t2 = time.perf_counter()
    ours = tables.estimate(**options)
    t3 = time.perf_counter()
    textbook = tables.textbook()
    naive = ours.with_columns(
        estimate_usd=pl.col("declared_usd"),
        ci_low_usd=pl.lit(None, pl.Float64),
        ci_high_usd=pl.lit(None, pl.Float64),
        method=pl.lit("naive"),
    )
    truth = pl.read_parquet(d / "truth.parquet")
    cols = ["method", "week", "domain", "key", "estimate_usd", "ci_low_usd", "ci_high_usd"]
    rows = (
        pl.concat([df.select(cols) for df in (ours, naive, textbook)])
        .join(truth, on=["week", "domain", "key"], how="left")
        .with_columns(seed=pl.lit(seed))
    )
    return rows, {"simulate_s": t1 - t0, "build_s": t2 - t1, "estimate_s": t3 - t2}


def summarise(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per method: coverage, half-width, period-total error."""
    covered = (pl.col("ci_low_usd") <= pl.col("value_usd")) & (pl.col("value_usd") <= pl.col("ci_high_usd"))
    tot = rows.filter(domain="total")
    cat = rows.filter(domain="category")
    a = tot.group_by("method").agg(
        cov_total=covered.fill_null(False).mean(),
        median_rel_halfwidth=((pl.col("ci_high_usd") - pl.col("ci_low_usd")) / 2 / pl.col("value_usd")).median(),
        median_abs_rel_error_week=((pl.col("estimate_usd") / pl.col("value_usd") - 1).abs()).median(),
    )
    b = cat.group_by("method").agg(cov_category=covered.fill_null(False).mean())
    period = (
        tot.group_by("method", "seed")
        .agg(err=pl.col("estimate_usd").sum() / pl.col("value_usd").sum() - 1)
        .group_by("method")
        .agg(
            period_error_median=pl.col("err").median(),
            period_abs_error_max=pl.col("err").abs().max(),
            worlds_within_5pct=(pl.col("err").abs() <= 0.05).sum(),
            worlds=pl.len(),
        )
    )
    order = {"pooled-ratio": 0, "naive": 1, "textbook": 2}
    out = a.join(b, on="method").join(period, on="method")
    return out.sort(pl.col("method").replace_strict(order, default=9))


def markdown(summary: pl.DataFrame) -> str:
    """The side-by-side table, with ours over textbook as ratios."""
    def fmt(v):
        if v is None:
            return "n/a"
        if isinstance(v, float):
            return f"{v:+.3f}" if abs(v) < 1 and v < 0 else f"{v:.3f}"
        return str(v)

    cols = summary.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in summary.iter_rows():
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    s = {r["method"]: r for r in summary.iter_rows(named=True)}
    if "pooled-ratio" in s and "textbook" in s:
        o, t = s["pooled-ratio"], s["textbook"]
        lines.append("")
        lines.append(
            f"ours / textbook: median half-width {o['median_rel_halfwidth'] / t['median_rel_halfwidth']:.3f}"
            f" (target <= {TARGETS['width_vs_textbook']}), max period error"
            f" {o['period_abs_error_max'] / t['period_abs_error_max']:.3f},"
            f" coverage total {o['cov_total']:.3f} vs {t['cov_total']:.3f},"
            f" category {o['cov_category']:.3f} vs {t['cov_category']:.3f}"
        )
        lo, hi = TARGETS["cov_total"]
        checks = {
            f"coverage weekly totals in [{lo}, {hi}]": lo <= o["cov_total"] <= hi,
            f"coverage category-week >= {TARGETS['cov_category']}": o["cov_category"] >= TARGETS["cov_category"],
            "half-width <= 0.75 x textbook": o["median_rel_halfwidth"] <= TARGETS["width_vs_textbook"] * t["median_rel_halfwidth"],
            "period error within 5% on every world": o["period_abs_error_max"] <= TARGETS["period_error"],
        }
        lines.append("")
        lines += [f"- [{'x' if ok else ' '}] {name}" for name, ok in checks.items()]
    return "\n".join(lines)


def matched_width(rows: pl.DataFrame) -> str:
    """Textbook half-width once its intervals are widened to reach our weekly-total coverage.

    Each interval side is multiplied by the smallest factor that covers the truth; the
    textbook factor at our coverage level says how wide it would have to be to match.
    """
    k, hw = {}, {}
    for m in ("pooled-ratio", "textbook"):
        x = rows.filter(domain="total", method=m)
        est, lo, hi, y = (x[c].to_numpy() for c in ("estimate_usd", "ci_low_usd", "ci_high_usd", "value_usd"))
        k[m] = np.where(y >= est, (y - est) / np.maximum(hi - est, 1e-9), (est - y) / np.maximum(est - lo, 1e-9))
        hw[m] = float(np.median((hi - lo) / 2 / y))
    cov = float(np.mean(k["pooled-ratio"] <= 1))
    factor = float(np.quantile(k["textbook"], cov))
    return (
        f"At matched coverage ({cov:.3f}) the textbook intervals must be {factor:.2f}x wider:"
        f" median half-width {hw['textbook'] * factor:.3f} vs ours {hw['pooled-ratio']:.3f}"
        f" (ours / textbook = {hw['pooled-ratio'] / (hw['textbook'] * factor):.3f});"
        f" ours would need {float(np.quantile(k['pooled-ratio'], 0.95)):.2f}x for 0.95."
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worlds", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--weeks", type=int, default=12)
    p.add_argument("--scale", type=float, default=0.2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--window", type=int, default=2)
    p.add_argument("--variance", default="wide")
    p.add_argument("--interval", default="percentile")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "suitcase-bench")
    p.add_argument("--rows", type=Path, help="write the per-cell rows here (parquet)")
    p.add_argument("--from-rows", type=Path, help="summarise rows written by an earlier run")
    a = p.parse_args(argv)
    if a.from_rows:
        rows = pl.read_parquet(a.from_rows)
        print(markdown(summarise(rows)) + "\n\n" + matched_width(rows))
        return
    a.cache.mkdir(parents=True, exist_ok=True)
    options = {"window": a.window, "variance": a.variance, "interval": a.interval}
    jobs = [(a.cache, s, a.weeks, a.scale, options) for s in range(a.first_seed, a.first_seed + a.worlds)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, min(a.workers, os.cpu_count() or 1))) as ex:
        results = list(ex.map(evaluate_world, jobs))
    rows = pl.concat([r for r, _ in results])
    if a.rows:
        rows.write_parquet(a.rows)
    timing = {k: float(np.sum([t[k] for _, t in results])) for k in results[0][1]}
    print(f"# Accuracy: {a.worlds} worlds x {a.weeks} weeks at scale {a.scale} ({options})\n")
    print(markdown(summarise(rows)))
    print("\n" + matched_width(rows))
    print(
        f"\nwall {time.perf_counter() - t0:.0f} s; summed over worlds: simulate {timing['simulate_s']:.0f} s,"
        f" build states {timing['build_s']:.0f} s, estimate {timing['estimate_s']:.0f} s"
    )


if __name__ == "__main__":
    main()
