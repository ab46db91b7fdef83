"""Putting events on Kafka: an archive replayed as fast as possible, or the simulator on
an accelerated clock. Keys follow :data:`streams.contract.TOPIC_KEYS` (a line whose key
cannot be read, e.g. a malformed one, is sent without a key).

fx.rates goes first (the whole file, or the day's rates before the day's events), as a
rate feed publishes a rate before the amounts priced with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import msgspec

from streams.archive import lines, topic_files
from streams.contract import RATES, TOPIC_KEYS, TOPICS

_KEY_DECODERS = {
    topic: msgspec.json.Decoder(dict[str, msgspec.Raw]) for topic in TOPICS
}


def key_of(topic: str, raw: bytes) -> bytes | None:
    """The message key of one event line (its TOPIC_KEYS field), or None if unreadable."""
    try:
        value = _KEY_DECODERS[topic].decode(raw).get(TOPIC_KEYS[topic])
        if value is None:
            return None
        key = msgspec.json.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
        return None
    return key.encode() if isinstance(key, str) else None


def archive_order(events_dir: Path) -> list[tuple[str, Path]]:
    """Topic files in replay order: rates first, then the contract's order."""
    files = topic_files(events_dir)
    return sorted(files.items(), key=lambda kv: (kv[0] != RATES, TOPICS.index(kv[0])))


def count_lines(events_dir: Path) -> int:
    return sum(sum(1 for _ in lines(path)) for _, path in archive_order(events_dir))


def producer(bootstrap: str):
    from kafka import KafkaProducer

    from streams.kafka_security import kafka_python_kwargs

    return KafkaProducer(
        **kafka_python_kwargs(),
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024,
        max_request_size=8 * 1024 * 1024, acks=1, client_id="suitcase-replay",
    )


class Written:
    """The last offset written per (topic, partition): what "caught up" must reach.

    (Tansu 0.6 answers ListOffsets with the base offset of the partition's last record
    batch, so end offsets are taken from what the producer was told instead.)
    """

    def __init__(self) -> None:
        self.last: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def __call__(self, metadata) -> None:
        key = (metadata.topic, metadata.partition)
        with self._lock:
            if metadata.offset > self.last.get(key, -1):
                self.last[key] = metadata.offset


def replay(
    events_dir: Path,
    bootstrap: str,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    written: Written | None = None,
) -> int:
    """Send every line of an archive (rates first); returns the number of records sent."""
    prod = producer(bootstrap)
    sent = 0
    try:
        for topic, path in archive_order(events_dir):
            for raw in lines(path):
                if stop is not None and stop.is_set():
                    return sent
                future = prod.send(topic, key=key_of(topic, raw), value=raw)
                if written is not None:
                    future.add_callback(written)
                sent += 1
                if progress is not None and sent % 1000 == 0:
                    progress(sent)
            if topic == RATES:
                prod.flush()  # the rates are on the broker before any amount
        prod.flush()
    finally:
        prod.close()
    if progress is not None:
        progress(sent)
    return sent


class PausedFeeds:
    """Topics whose simulated feed is held back, read from a file (one topic a line).

    A drill, not a fault model: an operator (or a test) writes a topic into the file to
    make that feed go quiet while the others flow, and removes it to let the feed resume;
    what was held back is then sent, late, so nothing is lost.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def __call__(self) -> frozenset[str]:
        if self.path is None:
            return frozenset()
        try:
            text = self.path.read_text("utf-8")
        except OSError:
            return frozenset()
        return frozenset(line.strip() for line in text.splitlines() if line.strip())


def simulated_feed(
    bootstrap: str,
    days: Iterable,
    seconds_per_day: float,
    stop: threading.Event,
    on_day: Callable[[object, int], None] | None = None,
    paused: Callable[[], frozenset[str]] = PausedFeeds(None),
) -> int:
    """Send the simulator's days, each spread over ``seconds_per_day`` of wall clock."""
    prod = producer(bootstrap)
    sent = 0
    held: list[tuple[str, bytes]] = []  # events of paused feeds, in order
    try:
        for day in days:
            started = time.monotonic()
            events = day.events
            for raw in events.get(RATES, ()):
                prod.send(RATES, key=key_of(RATES, raw), value=raw)
                sent += 1
            prod.flush()
            rest = [(t, raw) for t in TOPICS if t != RATES for raw in events.get(t, ())]
            rest.sort(key=lambda tr: _event_time(tr[1]))
            chunks = max(1, int(seconds_per_day * 10))
            size = max(1, -(-len(rest) // chunks))
            for i in range(0, len(rest), size):
                if stop.is_set():
                    return sent
                quiet = paused()
                due, held = held + rest[i:i + size], []
                for topic, raw in due:
                    if topic in quiet:
                        held.append((topic, raw))
                        continue
                    prod.send(topic, key=key_of(topic, raw), value=raw)
                    sent += 1
                prod.flush()
                target = started + seconds_per_day * min(1.0, (i + size) / max(1, len(rest)))
                _sleep_until(target, stop)
            if on_day is not None:
                on_day(day, sent)
            _sleep_until(started + seconds_per_day, stop)
            if stop.is_set():
                break
    finally:
        prod.close()
    return sent


class _EventTime(msgspec.Struct):
    event_time: str = ""


_TIME = msgspec.json.Decoder(_EventTime)


def _event_time(raw: bytes) -> str:
    try:
        return _TIME.decode(raw).event_time
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""


def _sleep_until(target: float, stop: threading.Event) -> None:
    delay = target - time.monotonic()
    if delay > 0:
        stop.wait(delay)


def iter_records(events_dir: Path) -> Iterator[tuple[str, bytes | None, bytes]]:
    for topic, path in archive_order(events_dir):
        for raw in lines(path):
            yield topic, key_of(topic, raw), raw
