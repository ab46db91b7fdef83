"""Topics of the live path, declared once against an app.

- the contract's six input topics (raw bytes; the worker decodes with the contract code);
- ``suitcase.deadletter``: every refused record. Value: the original bytes, unchanged;
  key: the original key. Headers (UTF-8): ``topic``, ``partition``, ``offset`` (of the
  original record) and ``reason`` (a reason of :data:`streams.pipeline.contract.REJECTION_REASONS`
  or ``too_late``);
- ``suitcase.estimates``: published estimate rows. Key ``week|domain|key``; value the
  row of the batch output (``suitcase estimate``) as one JSON object plus ``complete``
  (true once the whole app was caught up when the row was computed: every input
  partition's end offset covered by the merged state; false rows rest on incomplete
  input and may still move a lot), sent when it changes or becomes complete, at most
  once per publish interval;
- ``<app id>-partition-state-changelog`` (internal, faust's changelog of the
  ``partition-state`` table): each lane partition's steps, versioned MessagePack
  (:mod:`streams.pipeline.encoding`), each carrying its observations. Every worker of the app
  reads all of it, so each holds the merged estimator state of all partitions. There is
  no separate observation log any more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import faust

from streams.kafka.broker import DEADLETTER, ESTIMATES
from streams.pipeline.contract import TOPICS
from streams.pipeline.partition import LANES

#: Every topic the worker needs (``streams.kafka.broker.create_topics`` creates them).
OUTPUT_TOPICS: Final = (DEADLETTER, ESTIMATES)


@dataclass
class Topics:
    lanes: dict[str, faust.TopicT]  # lane -> topic object over its co-partitioned topics
    deadletter: faust.TopicT
    estimates: faust.TopicT


def define_topics(app: faust.App) -> Topics:
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    return Topics(
        lanes={lane: app.topic(*names, **raw) for lane, names in LANES.items()},
        deadletter=app.topic(DEADLETTER, **raw),
        estimates=app.topic(ESTIMATES, **raw),
    )


assert set(TOPICS) == {t for names in LANES.values() for t in names}
