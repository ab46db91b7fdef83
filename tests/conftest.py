"""Shared fixtures: a real embedded Tansu broker per test (it starts in ~0.2 s)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def broker():
    """A fresh Tansu broker on a free loopback port with the project's topics."""
    from streams.broker import EmbeddedBroker, create_topics

    with EmbeddedBroker() as running:
        create_topics(running.bootstrap)
        yield running


@pytest.fixture
def app_id() -> str:
    """A fresh consumer-group / app id."""
    return f"test-{uuid.uuid4().hex[:10]}"
