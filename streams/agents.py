"""The agents: one per lane, each over its co-partitioned topics, in batches.

An agent only turns faust events into :class:`~streams.live.Record` batches and hands
them to the worker, which decodes, validates, routes and makes one state update per
partition per batch (see :meth:`streams.worker.LiveWorker.handle`). Batching is what
keeps the changelog at one record per partition per batch instead of one per event.
"""

from __future__ import annotations

import faust

from streams.live import Record

#: Largest batch an agent takes, and how long it waits to fill one.
BATCH_MAX = 2000
BATCH_WITHIN_S = 0.1


def define_agents(app: faust.App, lanes: dict[str, faust.TopicT], handle) -> dict:
    agents = {}
    for lane, topic in lanes.items():

        async def agent(stream, lane=lane):
            # noack_take: an event is acknowledged (its offset may be committed) only
            # once its partition state has taken it; take_events would acknowledge a
            # batch even when the agent is cancelled before handling it (at a stop or
            # rebalance), and the next owner would never see those records.
            async for events in stream.noack_take(BATCH_MAX, within=BATCH_WITHIN_S):
                done = await handle(lane, [
                    Record(m.topic, m.partition, m.offset, m.timestamp or 0.0, m.value, m.key)
                    for m in (e.message for e in events)
                ])
                for event in events:
                    if event.message.partition in done:
                        await stream.ack(event)

        agent.__name__ = agent.__qualname__ = f"{lane}_agent"
        agents[lane] = app.agent(topic, name=f"{lane}-agent")(agent)
    return agents
