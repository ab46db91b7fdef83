"""The faust application of the live path: only the ``faust.App`` and its settings.

Topics (:mod:`streams.kafka.topics`), tables (:mod:`streams.kafka.tables`) and the worker's services
(:mod:`streams.kafka.worker`; faust runs the group, the table and its recovery, no agents) are
declared in their own modules against the app this returns. The app is built by a function, not at
import time, because one process may run several (tests give every run its own id).
"""

from __future__ import annotations

from pathlib import Path

import faust

#: Consumer-group session timeout. A group join waits about half of it on Tansu, so
#: keep it short; a worker that stops heart-beating for this long loses its partitions.
SESSION_TIMEOUT_S = 10.0


def create_app(app_id: str, bootstrap: str, partitions: int, data_dir: Path) -> faust.App:
    """The faust app of one worker: raw bytes in and out, memory tables, no web server."""
    from streams.kafka.security import faust_kwargs

    return faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        **faust_kwargs(),  # TLS / SASL (streams.kafka.security)
        datadir=str(data_dir),
        store="memory://",  # tables live in memory and are recovered from their changelog
        # No standby copies: a standby would hold every step of another worker's
        # partitions in memory (steps stay in the changelog); a new owner recovers.
        table_standby_replicas=0,
        topic_partitions=partitions,  # changelogs co-partitioned with the source topics
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,  # metrics are served by prometheus-client on --metrics-port
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        producer_linger_ms=5,
        stream_buffer_maxsize=16384,
        consumer_auto_offset_reset="earliest",
        # A rebalance need not wait for in-flight batches: an agent acknowledges only
        # what its partition state took, the rest is read again by the next owner.
        stream_wait_empty=False,
        autodiscover=False,
        # aiokafka's default max_poll_records is unbounded; keep batches bounded
        broker_max_poll_records=5000,
    )
