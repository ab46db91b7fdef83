"""How a worker merges the partitions' steps from the state changelog: each complete step
once, in order; an attempt cut short by a kill never counts, its redo does."""

from __future__ import annotations

from types import SimpleNamespace

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
