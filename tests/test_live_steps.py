"""How a worker merges the partitions' steps from the state changelog: each complete step
once, in order; an attempt cut short by a kill never counts, its redo does; obsolete
steps are tombstoned and a compacted changelog (with gaps in seq) gives the same states."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from estimators import Tables
from streams.pipeline.partition import PartitionState, encode_parts
from tests.test_live_state import records, tiny_archive


def message(raw: bytes | None):
    return SimpleNamespace(topic="app-partition-state-changelog", key=None, value=raw)


def test_an_attempt_cut_short_never_counts_and_its_redo_counts_once(tmp_path):
    from streams.kafka.worker import LiveWorker, WorkerSettings

    book, by_partition = records(tiny_archive(tmp_path / "tiny"))
    recs = by_partition[("crossings", 0)]
    worker = LiveWorker(WorkerSettings(bootstrap="127.0.0.1:9", app_id="steps", data_dir=tmp_path / "w"))
    expected = Tables()

    state = PartitionState("crossings", 0)
    first = state.process(recs[:40], book)
    for raw in encode_parts(first.segment, 2_000):
        worker._add_segment(message(raw))
    for o in first.observations:
        expected.update(o)

    # step 2 is written in parts; the writer is killed after some of them landed
    before = PartitionState.rebuild("crossings", 0, worker._latest[("crossings", 0)])
    cut = before.process(recs[40:], book)
    parts = encode_parts(cut.segment, 2_000)
    assert len(parts) > 2
    for raw in parts[:-1]:
        worker._add_segment(message(raw))
    assert worker._applied_seq[("crossings", 0)] == 1  # nothing of the cut attempt merged

    # the restarted owner rebuilds from what the reader kept and redoes step 2 otherwise
    again = PartitionState.rebuild("crossings", 0, worker._latest[("crossings", 0)])
    assert again.offsets == state.offsets and again.seq == 1
    redo = again.process(recs[40:], book)
    for raw in encode_parts(redo.segment, 1_000_000):
        worker._add_segment(message(raw))
    worker._add_segment(message(parts[-1]))  # the cut attempt's last part, arriving late
    worker._add_segment(message(b"garbage"))
    worker._add_segment(message(None))
    for o in redo.observations:
        expected.update(o)
    assert worker._applied_seq[("crossings", 0)] == 2
    assert worker.summaries.tables == expected
    assert worker.invalid_records() == {"app-partition-state-changelog": 1}


def rate_records(n: int) -> list:
    """``n`` exchange rates of one partition, one a minute: steps that carry no week."""
    import datetime as dt

    from streams.pipeline.contract import RATES
    from streams.pipeline.partition import Record
    from tests.events import line

    start = dt.datetime(2026, 3, 2, tzinfo=dt.timezone(dt.timedelta(hours=3, minutes=30)))
    return [Record(RATES, 0, i, 0.0, line(RATES, event_id=f"fx-{i}", currency="IRR", units_per_usd=600000 + i,
                                          event_time=(start + dt.timedelta(minutes=i)).isoformat()))
            for i in range(n)]


@pytest.mark.parametrize("key", [("crossings", 0), ("rates", 0)])
def test_a_compacted_changelog_keeps_every_week_and_a_restart_resumes_from_it(tmp_path, key):
    """An old writer that never tombstoned, then a new owner that does: it tombstones the
    history its ledger found obsolete while it did not own the partition, and every step
    record nobody needs after that. What Kafka's compaction leaves (the newest record
    per key, tombstoned keys gone) gives a third worker the same states and the same
    "how far" (the newest step is kept: the rates lane's steps carry no week), and its
    rebuilt partition continues exactly."""
    from streams.kafka.worker import LiveWorker, WorkerSettings
    from streams.pipeline.partition import COMPACT_EVERY

    book, by_partition = records(tiny_archive(tmp_path / "tiny", travellers=1500))
    recs = by_partition[key] if key[0] != "rates" else rate_records(600)
    cut = len(recs) // 2
    log: list[tuple[bytes, bytes | None]] = []  # the changelog partition, in offset order

    def reader(name: str) -> LiveWorker:
        worker = LiveWorker(WorkerSettings(bootstrap="127.0.0.1:9", app_id="steps", data_dir=tmp_path / name))
        worker._write = lambda partition, k, value: log.append((k, value))  # the changelog producer
        return worker

    def read(worker: LiveWorker, records_) -> None:
        for k, value in records_:
            worker._add_segment(SimpleNamespace(topic="app-partition-state-changelog", key=k, value=value))

    def run(worker: LiveWorker, state: PartitionState, batch: list, owner: bool) -> None:
        for i in range(0, len(batch), 2):
            step = state.process(batch[i:i + 2], book)
            step.dead.clear()  # dead letters go to their own topic, not under test here
            at = len(log)
            worker.states[key] = state
            worker._commit(state, step)
            if not owner:
                worker.states.pop(key)  # its reader never sees it as the owner
            read(worker, log[at:])  # read back by the worker's changelog reader

    def compacted() -> list[tuple[bytes, bytes]]:
        newest = {k: (offset, value) for offset, (k, value) in enumerate(log)}
        return [(k, value) for k, (_, value) in sorted(newest.items(), key=lambda kv: kv[1][0]) if value is not None]

    old = reader("old")
    run(old, PartitionState(*key), recs[:cut], owner=False)
    assert old.tombstoned == 0 and old._applied_seq[key] > 2 * COMPACT_EVERY

    new = reader("new")
    read(new, list(log))  # not yet the owner
    assert new.tombstoned == 0
    state = PartitionState.rebuild(*key, new._latest[key], weeks=new.summaries.week_states(key))
    new.states[key] = state
    new._tombstone(key)  # as _on_recover does once the partition is its own
    assert new.tombstoned > 0
    run(new, state, recs[cut:], owner=True)
    steps = new._applied_seq[key]

    kept = compacted()
    step_records = [k for k, _ in kept if b"|base|" not in k]
    weeks = set(new.summaries.week_states(key))
    assert len(step_records) <= COMPACT_EVERY + len(weeks) + 1 < steps

    observer = reader("observer")  # owns nothing: holds only tombstones still on their way
    read(observer, list(log))
    assert observer.tombstoned == 0 and observer._ledgers[key].take() == []

    fresh = reader("fresh")
    read(fresh, kept)
    assert fresh.summaries.tables == new.summaries.tables
    assert fresh._applied[key] == new._applied[key] == state.offsets  # how far: the newest step
    rebuilt = PartitionState.rebuild(*key, fresh._latest[key], weeks=fresh.summaries.week_states(key))
    assert rebuilt.offsets == state.offsets

    whole = PartitionState(*key)
    expected = Tables()
    for i in range(0, len(recs), 2):
        for o in whole.process(recs[i:i + 2], book).observations:
            expected.update(o)
    assert new.summaries.tables == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sets(st.sampled_from("abcde"), max_size=3), st.just("snapshot"), st.just("v2"),
                          st.just("take")), max_size=60),
       st.integers(1, 3))
def test_the_ledger_keeps_exactly_the_steps_a_rebuild_a_week_or_a_reader_needs(ops, parts):
    """After any sequence of steps, version-2 steps, snapshots and takes: every step
    after the snapshot, the newest step of every week, the newest step of all (its
    offsets say how far the partition is) and every version-2 step are kept; every
    other step is handed out for tombstoning exactly once, with its parts."""
    from streams.pipeline.partition import StepLedger

    ledger = StepLedger()
    seq, base, newest, v2, taken = 0, 0, {}, set(), []
    for op in ops:
        if op == "snapshot":
            base = seq
            ledger.snapshot(seq)
        elif op == "take":
            taken += ledger.take()
        else:
            seq += 1
            weeks = set() if op == "v2" else op
            if op == "v2":
                v2.add(seq)
            for week in weeks:
                newest[week] = seq
            ledger.step(seq, parts, weeks, observations=op == "v2")
        needed = set(range(base + 1, seq + 1)) | set(newest.values()) | {seq} - {0} | v2
        assert ledger.kept() == sorted(needed)
        everything = taken + ledger.take()
        taken = everything
        assert sorted(s for s, _ in taken) == sorted(set(range(1, seq + 1)) - needed)
        assert all(p == parts for _, p in taken)
