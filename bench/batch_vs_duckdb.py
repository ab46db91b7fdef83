"""Batch estimate beside a plain DuckDB query of the same shape, on the same archive.

    .venv/bin/python -m bench.batch_vs_duckdb [--weeks 12] [--scale 0.2] [--seed 11] [--repeat 1]

(``pip install -e '.[bench]'`` brings DuckDB.) One seeded archive (``suitcase simulate
--faults``, cached under ``bench/.cache``). Timed in this process, each from its files
to its result, the best of ``--repeat`` runs:

- ``suitcase estimate``: the command's code (:func:`streams.commands.cli.main`), archive to a
  Parquet file of estimate rows;
- ``duckdb``: one query that reads the NDJSON files skipping malformed lines, drops
  repeated event ids, and makes weekly (Tehran ISO week) sums per stratum: departures
  per border post x traveller group; declared and Horvitz-Thompson-weighted assessed
  values of the declarations and inspections joined to their departures; card payments
  per card type; formal exports per border post. No exchange rates, no estimator: the
  floor of reading and grouping these files.

Printed: both times and their ratio (issue 11's target: estimate <= 2.5x the query).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.replay_speed import archive  # noqa: E402

_TEHRAN_OFFSET_S = 12600  # Asia/Tehran is +03:30 all year since 2022


def _table(path: Path, columns: dict[str, str]) -> str:
    cols = ", ".join(f"{name}: '{kind}'" for name, kind in columns.items())
    return (f"(SELECT * FROM read_ndjson('{path}', ignore_errors = true, format = 'newline_delimited', "
            f"columns = {{{cols}}}) WHERE event_id IS NOT NULL AND event_time IS NOT NULL "
            f"QUALIFY row_number() OVER (PARTITION BY event_id) = 1)")


def _week(column: str = "event_time") -> str:
    return (f"date_trunc('week', make_timestamp(CAST((epoch(try_strptime({column}, '%Y-%m-%dT%H:%M:%S%z')) "
            f"+ {_TEHRAN_OFFSET_S}) * 1000000 AS BIGINT)))")


def duckdb_query(events: Path) -> dict[str, int]:
    """Rows of each weekly sum (the query's result, fetched)."""
    import duckdb

    items_declared = "STRUCT(category VARCHAR, quantity BIGINT, value DOUBLE, currency VARCHAR, purpose VARCHAR)[]"
    items_inspected = "STRUCT(category VARCHAR, quantity BIGINT, assessed_value DOUBLE, currency VARCHAR)[]"
    items_exported = "STRUCT(hs_code VARCHAR, quantity DOUBLE, value DOUBLE, currency VARCHAR)[]"
    base = {"event_id": "VARCHAR", "event_time": "VARCHAR"}
    departures = _table(events / "border.departures.ndjson", {
        **base, "crossing_id": "VARCHAR", "border_post": "VARCHAR", "resident": "BOOLEAN",
        "destination_country": "VARCHAR"})
    declarations = _table(events / "travellers.declarations.ndjson", {
        **base, "crossing_id": "VARCHAR", "items": items_declared})
    inspections = _table(events / "customs.inspections.ndjson", {
        **base, "crossing_id": "VARCHAR", "selection": "VARCHAR", "selection_probability": "DOUBLE",
        "items": items_inspected})
    payments = _table(events / "payments.transactions.ndjson", {
        **base, "card_type": "VARCHAR", "mcc": "VARCHAR", "amount": "DOUBLE", "kind": "VARCHAR"})
    exports = _table(events / "customs.exports.ndjson", {**base, "border_post": "VARCHAR", "items": items_exported})
    queries = {
        "strata": f"""
            WITH d AS (SELECT crossing_id, border_post, resident, {_week()} AS week FROM {departures}),
            decl AS (SELECT crossing_id, sum(i.value) AS declared
                     FROM (SELECT crossing_id, unnest(items) AS i FROM {declarations}) GROUP BY crossing_id),
            insp AS (SELECT crossing_id, sum(i.assessed_value / selection_probability) AS weighted
                     FROM (SELECT crossing_id, selection_probability, unnest(items) AS i FROM {inspections}
                           WHERE selection = 'random') GROUP BY crossing_id)
            SELECT week, border_post, resident, count(*) AS departures, sum(decl.declared) AS declared,
                   sum(insp.weighted) AS weighted_assessed
            FROM d LEFT JOIN decl USING (crossing_id) LEFT JOIN insp USING (crossing_id)
            GROUP BY ALL""",
        "payments": f"SELECT {_week()} AS week, card_type, sum(amount) AS amount FROM {payments} "
                    "WHERE mcc IN ('5970', '5971', '5713', '5944', '5947') GROUP BY ALL",
        "exports": f"""SELECT week, border_post, sum(i.value) AS value
                       FROM (SELECT {_week()} AS week, border_post, unnest(items) AS i FROM {exports}) GROUP BY ALL""",
    }
    with duckdb.connect() as db:
        return {name: len(db.execute(sql).fetchall()) for name, sql in queries.items()}


def suitcase_estimate(events: Path) -> int:
    import polars as pl

    from streams.commands.cli import main

    with tempfile.TemporaryDirectory(prefix="suitcase-bench-") as folder:
        out = Path(folder) / "estimate.parquet"
        assert main(["estimate", "--events", str(events), "--out", str(out)]) == 0
        return len(pl.read_parquet(out))


def best(run, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weeks", type=int, default=12)
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)

    events = archive(args.weeks, args.scale, args.seed, shuffle=False)
    lines = sum(p.read_bytes().count(b"\n") for p in events.glob("*.ndjson"))
    estimate_s, rows = best(lambda: suitcase_estimate(events), args.repeat)
    duck_s, sums = best(lambda: duckdb_query(events), args.repeat)
    print(f"archive: {events.name} ({lines:,} lines)")
    print(f"{'suitcase estimate':20} {estimate_s:7.2f} s  ({rows:,} estimate rows)")
    print(f"{'duckdb query':20} {duck_s:7.2f} s  ({', '.join(f'{n:,} {k} rows' for k, n in sums.items())})")
    ratio = estimate_s / duck_s
    print(f"estimate / duckdb: {ratio:.1f}x (issue 11 target <= 2.5x: {'met' if ratio <= 2.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
