"""The changelogged table of the live path.

One table, ``partition-state``: key ``lane|partition|seq|part`` (a segment: what one
processing step changed, with its observations) or ``lane|partition|base|seq|part`` (a
snapshot replacing the segments before it), value a :class:`streams.pipeline.encoding.Segment` in
versioned MessagePack (never pickle). Records are written with the *source*
partition as changelog partition, so the partition's state is recovered by whichever
worker is given that partition. See :mod:`streams.pipeline.partition` for what a segment holds.
"""

from __future__ import annotations

import faust

TABLE = "partition-state"


def define_tables(app: faust.App, partitions: int) -> faust.Table:
    return app.Table(TABLE, partitions=partitions, key_type=bytes, value_type=bytes, default=None)
