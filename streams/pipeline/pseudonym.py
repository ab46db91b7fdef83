"""The pseudonym key: the one secret every traveller digest is keyed with.

Read here and nowhere else. ``SUITCASE_PSEUDONYM_KEY`` must be the same on every worker
and batch run of a deployment (digests made with different keys do not match), and
secret (with it, a digest can be tested against guessed ids). ``suitcase worker`` refuses
to start without it (:func:`require`); the embedded default, ``suitcase up``, makes one
once and keeps it in its data directory, mode 0600 (:func:`ensure`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Final

ENV: Final = "SUITCASE_PSEUDONYM_KEY"
FILE_NAME: Final = "pseudonym.key"
#: Longest key used (BLAKE2b keys are at most 64 bytes).
MAX_BYTES: Final = 64

_key: bytes | None = None


class PseudonymKeyError(RuntimeError):
    """No usable key (one line, for the CLI)."""


def key() -> bytes:
    """The key of every digest (b"" when none is set: tests and ad-hoc batch runs)."""
    global _key
    if _key is None:
        _key = os.environ.get(ENV, "").encode("utf-8")[:MAX_BYTES]
    return _key


def use(value: str) -> None:
    """Make ``value`` the key of this process (and of the processes it starts)."""
    global _key
    os.environ[ENV] = value
    _key = value.encode("utf-8")[:MAX_BYTES]


def require() -> None:
    """PseudonymKeyError unless the environment sets a non-empty key."""
    if not os.environ.get(ENV, "").strip():
        raise PseudonymKeyError(
            f"{ENV} is not set: every worker and batch run of a deployment needs the same "
            f"secret key (for example from `openssl rand -hex 32`)"
        )


def ensure(data_dir: Path) -> str | None:
    """The environment's key, else the one kept in ``data_dir`` (made now if missing).

    Returns a warning line when the key came from the data directory, None otherwise.
    """
    if os.environ.get(ENV, "").strip():
        return None
    path = Path(data_dir) / FILE_NAME
    made = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
            made = True
        os.chmod(path, 0o600)
        value = path.read_text("utf-8").strip()
    except OSError as err:
        raise PseudonymKeyError(f"cannot keep the pseudonym key in {path}: {err.strerror or err}") from None
    if not value:
        raise PseudonymKeyError(f"the pseudonym key file {path} is empty: delete it or set {ENV}")
    use(value)
    how = "made a new one" if made else "using the one"
    return (
        f"suitcase: warning: {ENV} is not set; {how} kept in {path} (mode 0600). "
        f"Set {ENV} to the same secret wherever estimates are compared or merged."
    )
