"""Unit prices per region, read from prices.toml (one file: value, unit, source page, date checked)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).with_name("prices.toml")


class UnpricedRegionError(ValueError):
    """The region has no prices in prices.toml."""


@dataclass(frozen=True)
class PriceSheet:
    region: str
    region_name: str
    checked_on: str
    currency: str
    prices: dict[str, float]
    units: dict[str, str]
    sources: dict[str, str]

    def get(self, name: str) -> float | None:
        """The unit price, or None when no source gave it (the line is then "not priced")."""
        return self.prices.get(name)

    def source(self, name: str) -> str:
        """The page that publishes the price: its service is the name's first word."""
        return self.sources.get(name.split("_", 1)[0], "")

    def unit(self, name: str) -> str:
        return self.units.get(name, "")


@cache
def _document() -> dict[str, Any]:
    return tomllib.loads(PRICES_FILE.read_text())


def priced_regions() -> tuple[str, ...]:
    return tuple(sorted(_document()["regions"]))


def price_sheet(region: str = "us-east-1") -> PriceSheet:
    document = _document()
    regions = document["regions"]
    if region not in regions:
        raise UnpricedRegionError(
            f"no prices for region {region!r} in {PRICES_FILE.name} (priced: {', '.join(priced_regions())})"
        )
    entry = regions[region]
    return PriceSheet(
        region=region,
        region_name=entry["name"],
        checked_on=document["checked_on"],
        currency=document["currency"],
        prices={name: float(value) for name, value in entry["prices"].items()},
        units=dict(document["units"]),
        sources=dict(document["sources"]),
    )
