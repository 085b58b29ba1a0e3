"""Which scenario file exercises which outcome code, distribution rule, fallback mode, channel, bid
source, payout type and sale type (docs/scenarios.md).

`python -m tests.scenarios.coverage` prints the table of docs/scenarios.md.
"""

from __future__ import annotations

from typing import get_args

from pingpost.admin.schemas import Distribution, Rtb
from pingpost.domain.outcomes import Outcome
from tests.scenarios.scenario import Scenario, load, scenario_files

# What must be covered, read from the code where the code lists it.
REQUIRED: dict[str, list[str]] = {
    "outcome": [o.value for o in Outcome],
    "detail": ["one_per_buyer"],
    "rule": list(get_args(Distribution.model_fields["rule"].annotation)),
    "fallback": list(get_args(Rtb.model_fields["fallback"].annotation)),
    "channel": ["form", "call", "callback"],
    "source": ["fixed", "rtb", "static_fallback"],
    "payout": ["fixed", "revshare", "margin", "margin_percent"],
    "sale_type": ["exclusive", "shared"],
    "post_outcome": ["verification_failed"],  # post outcomes that only a post step in a file can show
}


def exercised(scenarios: list[Scenario] | None = None) -> dict[str, dict[str, list[str]]]:
    """kind -> value -> the files exercising it. A refused ping has no waterfall, and an xfail file's
    expectations do not hold yet: neither counts."""
    seen: dict[str, dict[str, list[str]]] = {kind: {} for kind in REQUIRED}

    def add(kind: str, value: str, scenario: Scenario) -> None:
        files = seen[kind].setdefault(value, [])
        if scenario.name not in files:
            files.append(scenario.name)

    for scenario in scenarios if scenarios is not None else [load(path) for path in scenario_files()]:
        if "error" in scenario.expect or "xfail" in scenario.doc:
            continue
        add("rule", scenario.rule, scenario)
        add("channel", scenario.doc["ping"].get("channel", "form"), scenario)
        add("payout", scenario.campaign["payout"]["type"], scenario)
        for contract in scenario.contracts:
            if "rtb" in contract and "price_cents" in contract:  # an RTB contract with a static price
                add("fallback", contract["rtb"].get("fallback", "always"), scenario)
        for _, outcome, detail in scenario.waterfall_outcomes():
            add("outcome", outcome, scenario)
            if detail in REQUIRED["detail"]:
                add("detail", detail, scenario)
        for entry in scenario.expect["waterfall"].values():
            for kind in ("source", "sale_type", "post_outcome"):
                if isinstance(entry.get(kind), str):
                    add(kind, entry[kind], scenario)
    return seen


def markdown_table(shown: int = 3) -> str:
    """One row per required value: the files named after it first, at most `shown`, and how many more."""
    seen = exercised()
    lines = ["| kind | value | files | more |", "|---|---|---|---|"]
    for kind, values in REQUIRED.items():
        for value in values:
            files = sorted(seen[kind].get(value, []), key=lambda name: (value not in name, name))
            listed = ", ".join(f"`{name}`" for name in files[:shown]) or "**none**"
            lines.append(f"| {kind} | `{value}` | {listed} | {max(len(files) - shown, 0) or ''} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
