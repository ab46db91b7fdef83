"""The id digests of the live path: a keyed BLAKE2b of the id, whatever the key is now.

``id_digest`` sets a keyed hash up once per key and copies it per id (the key schedule is
most of the cost of a short id); these pin that the copy gives exactly the one-shot keyed
digest, and that a new key is used as soon as it is set.
"""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pipeline import pseudonym
from streams.pipeline.partition import id_digest


def _reference(identifier: str, key: bytes) -> bytes:
    return hashlib.blake2b(identifier.encode("utf-8", "surrogatepass"), digest_size=16, key=key).digest()


@settings(max_examples=200, deadline=None)
@given(identifier=st.text(max_size=200),
       key=st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=80))
def test_digest_is_the_keyed_blake2b_of_the_id(identifier, key):
    pseudonym.use(key)
    assert id_digest(identifier) == _reference(identifier, key.encode("utf-8")[: pseudonym.MAX_BYTES])


def test_a_new_key_changes_every_digest_at_once():
    pseudonym.use("first-key")
    first = [id_digest(f"dep-{i}") for i in range(50)]
    pseudonym.use("second-key")
    second = [id_digest(f"dep-{i}") for i in range(50)]
    assert not set(first) & set(second)
    assert second == [_reference(f"dep-{i}", b"second-key") for i in range(50)]
    pseudonym.use("first-key")
    assert [id_digest(f"dep-{i}") for i in range(50)] == first  # the first key's hash, kept


def test_lone_surrogates_digest_as_before():
    pseudonym.use("k")
    assert id_digest("a\udc80b") == _reference("a\udc80b", b"k")
