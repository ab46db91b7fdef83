"""Topics of the live path, declared once against an app.

- the contract's six input topics (raw bytes; the agents decode with the contract code);
- ``suitcase.deadletter``: every refused record. Value: the original bytes, unchanged;
  key: the original key. Headers (UTF-8): ``topic``, ``partition``, ``offset`` (of the
  original record) and ``reason`` (a reason of :data:`streams.contract.REJECTION_REASONS`
  or ``too_late``);
- ``suitcase.estimates``: published estimate rows. Key ``week|domain|key``; value the
  row of the batch output (``suitcase estimate``) as one JSON object, sent when it
  changes, at most once per publish interval;
- ``<app id>-observations`` (internal, one per app like faust's changelogs): the
  estimator observations each lane partition releases, one record per processing step
  (pickled, key ``lane|partition|seq``). Every worker of the app reads all of it, so
  each holds the merged estimator state of all partitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import faust

from streams.broker import DEADLETTER, ESTIMATES
from streams.contract import TOPICS
from streams.live import LANES

#: Every topic the worker needs (``streams.broker.create_topics`` creates them).
OUTPUT_TOPICS: Final = (DEADLETTER, ESTIMATES)


def observations_topic(app_id: str) -> str:
    return f"{app_id}-observations"


@dataclass
class Topics:
    lanes: dict[str, faust.TopicT]  # lane -> topic object over its co-partitioned topics
    deadletter: faust.TopicT
    estimates: faust.TopicT
    observations: faust.TopicT


def define_topics(app: faust.App) -> Topics:
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    return Topics(
        lanes={lane: app.topic(*names, **raw) for lane, names in LANES.items()},
        deadletter=app.topic(DEADLETTER, **raw),
        estimates=app.topic(ESTIMATES, **raw),
        observations=app.topic(observations_topic(app.conf.id), **raw),
    )


assert set(TOPICS) == {t for names in LANES.values() for t in names}
