"""The prices the cost model uses: :file:`prices.json` beside this module, with date and sources.

Lambda's prices are not repeated there: they are :file:`engine/sizing/prices.json`'s, read by
:func:`engine.sizing.model.load_prices`, so the sizing and the cost models cannot disagree.

Example:
    >>> prices = load_cost_prices()
    >>> prices.region, prices.lambda_.architecture
    ('us-east-1', 'arm64')
    >>> prices.table["step_functions"]["state_transition"]
    2.5e-05
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from engine.sizing.model import Prices, load_prices

__all__ = ["CostPrices", "load_cost_prices"]


@dataclass(frozen=True)
class CostPrices:
    """Every price of the bill: Lambda's (:class:`~engine.sizing.model.Prices`) and the rest.

    Attributes:
        lambda_: Lambda's per GB-second and per request, for the template's architecture.
        table: per service, its prices and ``source`` (the page they come from).
        region: the region the prices are for.
        recorded: the date they were written down.

    """

    lambda_: Prices
    table: dict[str, dict[str, Any]]
    region: str
    recorded: str

    def price(self, service: str, item: str) -> float:
        """One price, e.g. ``price("s3", "get_and_other")``."""
        return float(self.table[service][item])

    def sources(self) -> dict[str, str]:
        """Where each service's prices come from."""
        out = {"lambda": f"{self.lambda_.source} (recorded {self.lambda_.recorded})"}
        out.update({k: v["source"] for k, v in self.table.items()
                    if isinstance(v, dict) and k != "lambda"})
        return out


def load_cost_prices(architecture: str = "arm64", path: str | None = None) -> CostPrices:
    """The bundled :file:`prices.json` (or ``path``) and Lambda's prices for ``architecture``."""
    if path is None:
        text = resources.files("engine.cost").joinpath("prices.json").read_text("utf-8")
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    data = json.loads(text)
    table = {k: v for k, v in data.items() if isinstance(v, dict)}
    return CostPrices(load_prices(architecture), table, data["region"], data["recorded"])
