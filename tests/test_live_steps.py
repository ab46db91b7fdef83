"""How a worker merges the partitions' steps from the state changelog: each complete step
once, in order; an attempt cut short by a kill never counts, its redo does; obsolete
steps are tombstoned and a compacted changelog (with gaps in seq) gives the same states."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from estimators import Tables
from streams.pipeline.partition import PartitionState, encode_parts
from tests.test_live_state import records, tiny_archive


def message(raw: bytes | None):
    return SimpleNamespace(topic="app-partition-state-changelog", value=raw)


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


def test_a_compacted_changelog_keeps_every_week_and_a_restart_resumes_from_it(tmp_path):
    """The owner tombstones the step records nobody needs (StepLedger); what Kafka's
    compaction leaves (the newest record per key, tombstoned keys gone) gives a new
    worker the same states, and its rebuilt partition continues exactly."""
    from streams.kafka.worker import LiveWorker, WorkerSettings
    from streams.pipeline.partition import COMPACT_EVERY

    book, by_partition = records(tiny_archive(tmp_path / "tiny", travellers=1500))
    key = ("crossings", 0)
    recs = by_partition[key]
    half = len(recs) // 2
    log: list[tuple[bytes, bytes | None]] = []  # the changelog partition, in offset order

    def owner(name: str) -> LiveWorker:
        worker = LiveWorker(WorkerSettings(bootstrap="127.0.0.1:9", app_id="steps", data_dir=tmp_path / name))
        worker._write = lambda partition, k, value: log.append((k, value))  # the changelog producer
        return worker

    def run(worker: LiveWorker, state: PartitionState, batch: list) -> None:
        worker.states[key] = state
        for i in range(0, len(batch), 3):
            step = state.process(batch[i:i + 3], book)
            step.dead.clear()  # dead letters go to their own topic, not under test here
            read = len(log)
            worker._commit(state, step)
            for k, value in log[read:]:  # read back by the worker's changelog reader
                worker._add_segment(SimpleNamespace(topic="app-partition-state-changelog", key=k, value=value))

    def compacted() -> list[tuple[bytes, bytes]]:
        newest = {k: (offset, value) for offset, (k, value) in enumerate(log)}
        return [(k, value) for k, (_, value) in sorted(newest.items(), key=lambda kv: kv[1][0]) if value is not None]

    first = owner("a")
    run(first, PartitionState(*key), recs[:half])
    steps = first._applied_seq[key]
    assert steps > 2 * COMPACT_EVERY and first.tombstoned > 0
    kept = compacted()
    weeks = set(first.summaries.week_states(key))
    # bounded by weeks and the steps since the snapshot, not by the steps written
    step_records = [k for k, _ in kept if b"|base|" not in k]
    assert len(step_records) <= COMPACT_EVERY + len(weeks) < steps

    second = owner("b")
    for k, value in kept:  # a new worker reads the compacted changelog
        second._add_segment(SimpleNamespace(topic="app-partition-state-changelog", key=k, value=value))
    assert second.summaries.tables == first.summaries.tables
    rebuilt = PartitionState.rebuild(*key, second._latest[key], weeks=second.summaries.week_states(key))
    assert rebuilt.offsets == first.states[key].offsets
    run(second, rebuilt, recs[half:])

    whole = PartitionState(*key)
    expected = Tables()
    for i in range(0, len(recs), 3):
        for o in whole.process(recs[i:i + 3], book).observations:
            expected.update(o)
    assert second.summaries.tables == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sets(st.sampled_from("abcde"), max_size=3), st.just("snapshot")), max_size=60),
       st.integers(1, 3))
def test_the_ledger_keeps_exactly_the_steps_a_rebuild_or_a_week_needs(ops, parts):
    """After any sequence of steps and snapshots: every step after the snapshot and the
    newest step of every week are kept, nothing else is, and each obsolete record was
    named once with its parts."""
    from streams.pipeline.partition import StepLedger

    ledger = StepLedger()
    seq, base, newest, named = 0, 0, {}, []
    for op in ops:
        if op == "snapshot":
            base = seq
            named += ledger.snapshot(seq)
        else:
            seq += 1
            for week in op:
                newest[week] = seq
            named += ledger.step(seq, parts, op)
        needed = set(range(base + 1, seq + 1)) | set(newest.values())
        assert ledger.kept() == sorted(needed)
        assert sorted(s for s, _ in named) == sorted(set(range(1, seq + 1)) - needed)
        assert all(p == parts for _, p in named)
