"""Reference codes of the border data contract (version 1), loaded once from package data.

The contract's tables live in ``data/reference.json`` so that producers, tests and the
dashboard generator read the same codes the decoder checks against.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Final

_DATA = json.loads(files(__package__).joinpath("data", "reference.json").read_text("utf-8"))

CONTRACT_VERSION: Final[int] = _DATA["contract_version"]

#: Border post code -> {"place", "mode", "serves", "lat", "lon"}.
BORDER_POSTS: Final[dict[str, dict]] = _DATA["border_posts"]
#: Handicraft category -> HS headings (first four digits of an HS code).
CATEGORY_HS_HEADINGS: Final[dict[str, tuple[str, ...]]] = {
    c: tuple(h) for c, h in _DATA["categories"].items()
}
CATEGORIES: Final[tuple[str, ...]] = tuple(CATEGORY_HS_HEADINGS)
#: HS heading -> handicraft category; a heading not here is not a handicraft.
HS_HEADING_CATEGORY: Final[dict[str, str]] = {
    h: c for c, hs in CATEGORY_HS_HEADINGS.items() for h in hs
}
DESTINATION_REGIONS: Final[tuple[str, ...]] = tuple(_DATA["destination_regions"])
_COUNTRY_REGION: Final[dict[str, str]] = {
    cc: region for region, ccs in _DATA["destination_regions"].items() for cc in ccs
}
HANDICRAFT_MCCS: Final[frozenset[str]] = frozenset(_DATA["handicraft_mccs"])

#: The domains an estimate is broken down by, in the order outputs list them.
DOMAINS: Final[tuple[str, ...]] = ("total", "category", "border_post", "destination_region")


def destination_region(country: str) -> str:
    """The contract's destination region of an ISO 3166-1 alpha-2 country code."""
    return _COUNTRY_REGION.get(country, "other")


def hs_category(hs_code: str | None) -> str | None:
    """The handicraft category of an HS code, or None when it is not a handicraft."""
    if not hs_code:
        return None
    return HS_HEADING_CATEGORY.get(hs_code[:4])
