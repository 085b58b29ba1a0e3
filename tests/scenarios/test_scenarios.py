"""Every scenario file under tests/scenarios/ runs as one test (docs/scenarios.md); adding a case is
adding a file. The coverage tests fail when an auction outcome, a distribution rule, a static
fallback mode, a channel, a bid source, a payout type or a sale type has no file exercising it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pingpost.domain.outcomes import Outcome
from tests.scenarios.coverage import REQUIRED, exercised
from tests.scenarios.scenario import Scenario, load, run, scenario_files

SCENARIOS = [load(path) for path in scenario_files()]


def _params() -> list[object]:
    return [
        pytest.param(
            scenario,
            id=scenario.name,
            marks=[pytest.mark.xfail(strict=True, reason=scenario.doc["xfail"])] if "xfail" in scenario.doc else [],
        )
        for scenario in SCENARIOS
    ]


@pytest.mark.parametrize("scenario", _params())
async def test_scenario(scenario: Scenario, sqlite_template: Path, tmp_path: Path) -> None:
    database = tmp_path / "pingpost.db"
    shutil.copy(sqlite_template, database)
    await run(scenario, database_url=f"sqlite:///{database}")


@pytest.mark.parametrize("kind", sorted(REQUIRED))
def test_every_case_has_a_scenario_file(kind: str) -> None:
    missing = set(REQUIRED[kind]) - set(exercised(SCENARIOS)[kind])
    assert not missing, f"no scenario file exercises these {kind} values: {sorted(missing)}"


def test_the_coverage_check_reads_the_code() -> None:
    """The required outcomes and rules come from the code, so a new one without a file fails above."""
    assert set(REQUIRED["outcome"]) == {o.value for o in Outcome} and "not_selected" in REQUIRED["outcome"]
    assert {"exclusive", "multisell", "hybrid", "priority", "weighted", "round_robin"} <= set(REQUIRED["rule"])
    assert {"always", "on_failure", "never"} <= set(REQUIRED["fallback"])
    assert len(SCENARIOS) >= 40
