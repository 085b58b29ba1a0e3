"""Measure the console's pages: p50 and p95 per page against a live `pingpost serve` on a database
filled by `pingpost seed-data` (docs/performance.md, Console).

    .venv/bin/pingpost seed-data --pings 1000000 --database sqlite:////tmp/seed/p.db
    .venv/bin/python -m tests.console.measure --database sqlite:////tmp/seed/p.db

The server runs with the tests' admin token and secret key, so seed with those too
(PINGPOST_ADMIN_TOKEN=test-admin-token PINGPOST_SECRET_KEY=test-secret-key)."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.servers import pingpost_server
from tests.support.console import csrf_of


def pages(client: httpx.Client) -> list[str]:
    newest = client.get("/console/pings").text
    ping = newest.split('href="/console/pings/png_', 1)[1].split('"', 1)[0]
    return [
        "/console",
        "/console/pings",
        "/console/pings?status=sold",
        "/console/pings?partner=seed-bolt",
        "/console/pings?campaign=seed-coral-camp",
        f"/console/pings/live?after=png_{ping}",
        f"/console/pings/png_{ping}",
        "/console/buyers",
        "/console/buyers/seed-charlie",
        "/console/contracts",
        "/console/contracts/seed-charlie-k",
        "/console/partners",
        "/console/campaigns/seed-acme-camp",
        "/console/sales",
        "/console/sales?buyer=seed-alpha",
        "/console/reconciliation",
        "/console/reports",
        "/console/reports?group_by=buyer",
        "/console/reports.csv?group_by=day",
    ]


def measure(base: str, rounds: int) -> list[tuple[str, float, float, float, float]]:
    with httpx.Client(base_url=base, timeout=60) as client:
        r = client.post("/console/login", data={"key": ADMIN_TOKEN})
        assert r.status_code == 303, r.text
        started = time.perf_counter()
        csrf_of(client.get("/console").text)
        print(
            f"the very first overview (closed days' totals computed and stored): "
            f"{(time.perf_counter() - started) * 1000:.0f} ms"
        )
        urls = pages(client)
        first: dict[str, float] = {}
        for url in urls:  # the first overview stores the closed days' totals
            started = time.perf_counter()
            assert client.get(url).status_code == 200, url
            first[url] = (time.perf_counter() - started) * 1000
        timings: dict[str, list[float]] = {url: [] for url in urls}
        for _ in range(rounds):
            for url in urls:
                started = time.perf_counter()
                response = client.get(url)
                timings[url].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (url, response.status_code)
    out = []
    for url, ms in timings.items():
        ms.sort()
        out.append((url, first[url], statistics.median(ms), ms[max(0, int(len(ms) * 0.95) - 1)], ms[-1]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", required=True)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, pingpost_server(args.database, workdir=Path(workdir)) as base:
        rows = measure(base, args.rounds)
    print(f"| page | first ms | p50 ms | p95 ms | max ms |  ({args.rounds} requests a page after the first)")
    print("|---|---:|---:|---:|---:|")
    for url, once, p50, p95, worst in rows:
        print(f"| `{url}` | {once:.1f} | {p50:.1f} | {p95:.1f} | {worst:.1f} |")


if __name__ == "__main__":
    main()
