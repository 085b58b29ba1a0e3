"""Our OpenAPI document tells the truth: schemathesis, every check, against a live `pingpost serve`.

Partners and buyers generate clients from `/openapi.json`, so the test runs as an outside client would:
the schemathesis CLI in a subprocess against a real server process on SQLite, every operation, every
check (`not_a_server_error`, `status_code_conformance`, `response_schema_conformance`,
`positive_data_acceptance`, `negative_data_rejection`, `unsupported_method`, `ignored_auth`, ...). It
fails on a status an operation answers but does not document, a request the document allows that the
code refuses (or the reverse), an answer outside its documented schema (every refusal is the one
`ErrorOut` shape), a 405 without `Allow`, or a 5xx.

Two things the document cannot state are left to the run's configuration, and the operations say so in
their descriptions:
- the partner endpoints and call events take a lead whose fields are the vertical's, configured at run
  time: they skip `positive_data_acceptance` (every other check runs on them);
- references to existing objects and the few other run-time rules of admin bodies: positive cases are
  pointed at the seeded objects (tests/api/openapi_hooks.py).

By hand, against a server of your own (`PINGPOST_ADMIN_TOKEN=test-admin-token pingpost serve` on a fresh
database), from the repository root:

    pingpost sandbox-buyers --port 8001 &   # the seeded contract's buyer (payouts need a sale)
    eval "$(python -m tests.api.test_openapi http://127.0.0.1:8000 http://127.0.0.1:8001)"   # seeds, exports keys
    PYTHONPATH=. st --config-file tests/api/schemathesis.toml run http://127.0.0.1:8000/openapi.json \\
        --max-examples 20
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pingpost.admin.endpoints import _patch_model
from pingpost.admin.service import RESOURCES
from tests.api import openapi_hooks as seeded
from tests.api.setup_data import LEAD, VERTICAL
from tests.conftest import ADMIN_TOKEN, Api
from tests.servers import admin_session, pingpost_server, sandbox_server

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
# `make test` runs a bounded pass, well under a minute: every phase on every operation, few random examples,
# and no coverage phase (schemathesis' deterministic walk over each schema: missing and boundary values,
# each branch, each type) for the PATCH bodies, which state their create bodies' rules field by field
# (test_patch_bodies_state_the_create_rules), nor for the contract body, the largest (half the walk), nor for
# the offer and campaign bodies since their `verification` lists (five kinds of check, auth inside) made
# them the next largest: measured 52 s of a 220 s run on a loaded machine; tests/api/test_verification.py
# refuses bad checks, and the random (fuzzing) phase still posts them.
# PINGPOST_ST_FULL=1 runs the whole walk and more random examples (minutes).
FULL = os.environ.get("PINGPOST_ST_FULL") == "1"
MAX_EXAMPLES = int(os.environ.get("PINGPOST_ST_MAX_EXAMPLES", "20" if FULL else "5"))
SEED = int(os.environ.get("PINGPOST_ST_SEED", "1"))
BOUNDED = """
[[operations]]
include-method = "PATCH"
phases.coverage.enabled = false

[[operations]]
include-name = "POST /v1/admin/contracts"
phases.coverage.enabled = false

[[operations]]
include-name = "POST /v1/admin/offers"
phases.coverage.enabled = false

[[operations]]
include-name = "POST /v1/admin/campaigns"
phases.coverage.enabled = false
"""


async def seed(base: str, sandbox: str | None = None) -> dict[str, str]:
    """One of everything, with the ids tests/api/openapi_hooks.py points positive cases at; the keys. With
    the sandbox buyers' `sandbox` (`pingpost sandbox-buyers`), also one sale and the partner's payout."""
    async with admin_session(base) as post:
        await post("/v1/admin/verticals", VERTICAL)
        await post(
            "/v1/admin/offers",
            {"id": seeded.OFFER, "name": "M", "vertical": seeded.VERTICAL, "channels": ["form", "call", "callback"]},
        )
        await post("/v1/admin/partners", {"id": seeded.PARTNER, "name": "Acme"})
        campaign = await post(
            "/v1/admin/campaigns",
            {
                "id": "cmp",
                "name": "C",
                "partner": seeded.PARTNER,
                "offer": seeded.OFFER,
                "payout": {"type": "revshare", "percent": 50},
            },
        )
        await post("/v1/admin/buyers", {"id": seeded.BUYER, "name": "B"})
        await post("/v1/admin/suppression-lists", {"id": "seeded-dnc", "name": "DNC"})  # entries go here
        await post(
            "/v1/admin/contracts",
            {
                "id": "k",
                "name": "K",
                "buyer": seeded.BUYER,
                "offer": seeded.OFFER,
                "price_cents": 100,
                "transfer": {"phone": "+13055550100"},
                **({"delivery": {"url": f"{sandbox}/deliver/b/accept"}} if sandbox else {}),
            },
        )
        call = await post("/v1/admin/api-keys", {"kind": "call_platform", "name": "t"})
        buyer = await post("/v1/admin/api-keys", {"kind": "buyer", "buyer": seeded.BUYER, "name": "b"})
        if sandbox:  # one sale, so that the partner is owed something, and the payout the hooks' payouts repeat
            await post(f"/v1/admin/buyers/{seeded.BUYER}/deposits", {"amount_cents": 10_000})
            await sell(base, campaign["posting_key"])
            await post(
                f"/v1/admin/partners/{seeded.PARTNER}/payouts",
                {"amount_cents": seeded.PAYOUT_CENTS, "reference": seeded.PAYOUT_REFERENCE},
            )
    assert VERTICAL["id"] == seeded.VERTICAL
    assert any(f["name"] == seeded.NON_PII_FIELD and not f.get("pii") for f in VERTICAL["fields"])
    return {
        "PINGPOST_ADMIN_TOKEN": ADMIN_TOKEN,
        "PINGPOST_ST_POSTING_KEY": campaign["posting_key"],
        "PINGPOST_ST_CALL_KEY": call["key"],
        "PINGPOST_ST_BUYER_KEY": buyer["key"],
    }


async def sell(base: str, posting_key: str) -> None:
    """Ping and post one lead through the seeded campaign: one sale."""
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {posting_key}"}, timeout=30
    ) as client:
        ping = await client.post("/v1/ping", json={"lead": LEAD})
        assert ping.status_code == 200 and ping.json()["bids"], ping.text
        posted = await client.post(
            "/v1/post",
            json={"ping_id": ping.json()["ping_id"], "lead": {**LEAD, "first_name": "Ann", "phone": "3055550101"}},
        )
        assert posted.status_code == 200 and posted.json()["sales"], posted.text


def run_schemathesis(
    location: str, keys: dict[str, str], workdir: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`st run LOCATION` with tests/api/schemathesis.toml, as a separate process; its NDJSON report."""
    runs = len(list(workdir.glob("schemathesis-*.ndjson")))
    report = workdir / f"schemathesis-{runs}.ndjson"
    config = workdir / f"schemathesis-{runs}.toml"
    config.write_text(CONFIG.read_text() + ("" if FULL else BOUNDED))
    env = {**os.environ, **keys, "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1,localhost", "NO_COLOR": "1"}
    args = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        location,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        *extra,
    ]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return done, report


class Run:
    """What a schemathesis run reported: each failed check (operation, check, status, first line of its
    message, the request), the statuses each operation answered, the `Allow` header of each 405 by
    operation, and how many operations the document has."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.statuses: dict[str, set[int]] = defaultdict(set)
        self.allow: dict[str, set[str]] = defaultdict(set)
        self.operations = 0


def read_report(report: Path) -> Run:
    run = Run()
    failures, statuses = run.failures, run.statuses
    for line in report.read_text().splitlines():
        event = json.loads(line)
        if "LoadingFinished" in event:
            run.operations = event["LoadingFinished"]["statistic"]["operations"]["total"]
        scenario = event.get("ScenarioFinished")
        if scenario is None:
            continue
        recorder = scenario["recorder"]
        for interaction in recorder.get("interactions", {}).values():
            response = interaction.get("response")
            if response and scenario["phase"] != "stateful":  # its label is not an operation
                statuses[recorder["label"]].add(response["status_code"])
                if response["status_code"] == 405:
                    headers = {name.lower(): value for name, value in response.get("headers", {}).items()}
                    run.allow[recorder["label"]].add(", ".join(headers.get("allow", [])))
        if scenario["status"] == "error":
            failures.append(f"{recorder['label']}: error {json.dumps(scenario)[:300]}")
        for case_id, checks in recorder.get("checks", {}).items():
            for check in checks:
                if check["status"] != "failure":
                    continue
                failure = check["failure_info"]["failure"]
                response = (recorder["interactions"].get(case_id) or {}).get("response") or {}
                request = (recorder["interactions"].get(case_id) or {}).get("request") or {}
                body = request.get("body", {}).get("$base64")
                sent = base64.b64decode(body).decode(errors="replace")[:200] if body else ""
                failures.append(
                    f"{failure['operation']} [{check['name']}] {response.get('status_code')}: "
                    f"{(failure['message'].splitlines() or [failure.get('title', '')])[0]} ({request.get('method')} "
                    f"{request.get('uri')} {sent})"
                )
    run.failures = sorted(set(failures))
    return run


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], Path]]:
    workdir = tmp_path_factory.mktemp("openapi")
    with (
        sandbox_server(workdir) as sandbox,
        pingpost_server(f"sqlite:///{workdir / 'openapi.db'}", workdir=workdir) as base,
    ):
        yield base, asyncio.run(seed(base, sandbox)), workdir


def test_the_document_is_what_the_server_does(server: tuple[str, dict[str, str], Path]) -> None:
    base, keys, workdir = server
    done, report = run_schemathesis(f"{base}/openapi.json", keys, workdir)
    assert report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    run = read_report(report)
    assert not run.failures, "\n".join(run.failures) + "\n\n" + done.stdout[-3000:]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Not a vacuous pass: every operation ran, and each got past its key check at least once (a broken
    # key in the configuration would leave nothing but 401s).
    assert run.operations > 40 and len(run.statuses) == run.operations, sorted(run.statuses)
    locked_out = sorted(label for label, seen in run.statuses.items() if seen <= {401})
    assert not locked_out, locked_out
    # schemathesis takes any `Allow` header, even an empty one: each must name the path's methods.
    paths = httpx.get(f"{base}/openapi.json").json()["paths"]
    wrong = {
        label: allow
        for label, allow in run.allow.items()
        if allow != {", ".join(sorted(m.upper() for m in paths[label.split(" ", 1)[1]]))}
    }
    assert run.allow and not wrong, wrong


def test_a_lie_in_the_document_is_caught(server: tuple[str, dict[str, str], Path]) -> None:
    """The same run on a document that lies twice: a 404 left undocumented, a pattern left unstated."""
    base, keys, workdir = server
    document = httpx.get(f"{base}/openapi.json").json()
    del document["paths"]["/v1/admin/verticals/{ident}"]["get"]["responses"]["404"]
    account = next(p for p in document["paths"]["/v1/admin/ledger"]["get"]["parameters"] if p["name"] == "account")
    del account["schema"]["pattern"]
    lying = workdir / "lying.json"
    lying.write_text(json.dumps(document))
    done, report = run_schemathesis(
        str(lying),
        keys,
        workdir,
        "--url",
        base,
        "--phases",
        "coverage",
        "--include-path-regex",
        r"^/v1/admin/(verticals/\{ident\}|ledger)$",
        "--include-method",
        "GET",
    )
    failures = read_report(report).failures
    assert done.returncode != 0
    assert any(f.startswith("GET /v1/admin/verticals/{ident} [status_code_conformance] 404") for f in failures), (
        failures
    )
    assert any(f.startswith("GET /v1/admin/ledger [positive_data_acceptance] 422") for f in failures), failures


# --- in-process: what the bounded run leaves to them, and the behaviour the document promises ---------------


def test_patch_bodies_state_the_create_rules() -> None:
    """A PATCH body states each field's rules as the create body does (the merged object is validated by
    the create model): only `id` differs (not null), and `id` and the fields fixed at creation are readOnly."""
    for kind, resource in RESOURCES.items():
        create = resource.model.model_json_schema()
        patch = _patch_model(resource.model, resource.immutable).model_json_schema()
        assert create.get("$defs") == patch.get("$defs"), kind
        assert set(patch["properties"]) == set(create["properties"]) and "required" not in patch, kind
        for name, stated in patch["properties"].items():
            expected = {k: v for k, v in create["properties"][name].items() if k != "default"}
            if name == "id":
                expected = {**expected.pop("anyOf")[0], **expected}
            fixed = name == "id" or name in resource.immutable
            assert stated == {**expected, **({"readOnly": True} if fixed else {})}, (kind, name)


async def test_a_405_names_every_method_of_its_path(api: Api) -> None:
    """`Allow` (RFC 9110) lists every route of the path, the ping fast path's included."""
    for method, path, allow in [
        ("TRACE", "/v1/admin/verticals", "GET, POST"),
        ("OPTIONS", "/v1/admin/verticals/x", "GET, PATCH"),
        ("PUT", "/v1/ping", "POST"),
        ("GET", "/v1/post", "POST"),
        ("DELETE", "/v1/calls/png_x/failed", "POST"),
        ("POST", "/healthz", "GET"),
    ]:
        r = await api.request(method, path)
        assert (r.status_code, r.headers.get("allow")) == (405, allow), (method, path, r.text)
        assert r.json()["error"]["code"] == "method_not_allowed"


async def test_an_integer_field_takes_a_whole_number_written_as_a_float(api: Api) -> None:
    """JSON Schema counts 2.0 as the integer 2 (so does the document): so does the code. 2.5 is refused."""
    created = await api.ok("POST", "/v1/admin/buyers", 201, json={"id": "b1", "name": "B", "credit_limit_cents": 500.0})
    assert created["credit_limit_cents"] == 500 and isinstance(created["credit_limit_cents"], int)
    r = await api.request("PATCH", "/v1/admin/buyers/b1", json={"credit_limit_cents": 500.5})
    assert r.status_code == 422, r.text
    deposit = await api.ok("POST", "/v1/admin/buyers/b1/deposits", 201, json={"amount_cents": 1e3})
    assert deposit["entries"][0]["amount_cents"] in (1000, -1000)


async def test_every_rfc3339_time_is_read(api: Api) -> None:
    """Even one whose UTC instant falls outside years 1-9999, and a lower-case `z`."""
    for value in ("0001-01-01T00:00:00+23:00", "9999-12-31T23:59:59-23:59", "2026-01-01t00:00:00z"):
        for path in ("/v1/admin/reports/summary", "/v1/admin/pings", "/v1/admin/sales"):
            r = await api.request("GET", path, params={"from": value, "to": value})
            assert r.status_code == 200, (path, value, r.text)
    r = await api.request("GET", "/v1/admin/pings", params={"from": "yesterday"})
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["field"] == "from"


if __name__ == "__main__":
    # Seed a server of your own for a run by hand (see the module's docstring); print the keys to export.
    for name, value in asyncio.run(seed(*sys.argv[1:3])).items():
        print(f"export {name}={value}")
