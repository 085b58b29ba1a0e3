"""`pingpost demo`: the exchange working end to end on the embedded SQLite store.

Starts the sandbox buyers and a pingpost server (each its own process), applies the Medicare
setup of `examples/medicare.yaml`, then sends a stream of pings and posts, printing each
auction's waterfall and a running summary. The server stays up (curl it) until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pingpost.config import Settings
from pingpost.processes import pingpost_process
from pingpost.security import new_key

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "medicare.yaml"
POSTING_KEY = "pp_demo_acme_medicare"
STATES = ["FL", "TX", "AZ", "NC", "PA", "OH", "GA"]
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances"]


def run_demo(*, port: int, sandbox_port: int = 8700, count: int = 25) -> None:
    from pingpost.admin.apply import apply_file
    from pingpost.bootstrap import prepare_database

    console = Console()
    workdir = Path(tempfile.mkdtemp(prefix="pingpost-demo-"))
    token = new_key("ppa")
    settings = Settings(
        database_url=f"sqlite:///{workdir / 'pingpost.db'}", admin_token=token, key_file=str(workdir / "pingpost.key")
    )
    prepare_database(settings)
    setup = yaml.safe_load(EXAMPLE.read_text().replace("127.0.0.1:8700", f"127.0.0.1:{sandbox_port}"))
    setup["offers"][0].update(demo_verification(sandbox_port))
    asyncio.run(apply_file(settings, setup))
    env = {
        **os.environ,
        "PINGPOST_ADMIN_TOKEN": token,
        "PINGPOST_KEY_FILE": settings.key_file or "",
        "PINGPOST_JSON_LOGS": "true",
        # the sandbox's vendor look-alikes (docs/verification.md); demo credentials, not real accounts
        "PINGPOST_TRUSTEDFORM_API_KEY": "demo-trustedform-key",
        "PINGPOST_JORNAYA_BASE_URL": f"http://127.0.0.1:{sandbox_port}/jornaya",
        "PINGPOST_JORNAYA_ACCOUNT_CODE": "demo-account-code",
    }
    base = f"http://127.0.0.1:{port}"
    signal.signal(signal.SIGTERM, _stop)  # stop the children like Ctrl-C does
    try:
        with contextlib.ExitStack() as children:
            children.enter_context(
                pingpost_process(
                    ["sandbox-buyers", "--port", str(sandbox_port)],
                    env=env,
                    log=workdir / "sandbox.log",
                    ready_url=f"http://127.0.0.1:{sandbox_port}/_received/none",
                    grace_s=5,
                )
            )
            children.enter_context(
                pingpost_process(
                    ["serve", "--port", str(port), "--database", settings.database_url],
                    env=env,
                    log=workdir / "server.log",
                    ready_url=f"{base}/readyz",
                    grace_s=5,
                )
            )
            console.rule("[bold]pingpost demo")
            console.print(f"server {base} (SQLite at {workdir / 'pingpost.db'}), sandbox buyers on :{sandbox_port}")
            console.print(f"admin token: [bold]{token}[/bold]   partner posting key: [bold]{POSTING_KEY}[/bold]")
            buyer_key = asyncio.run(_buyer_key(base, token))
            _console_hint(console, base, token, buyer_key)
            asyncio.run(_call(console, base, token))
            asyncio.run(_stream(console, base, token, count, sandbox_port=sandbox_port))
            _hints(console, base, token)
            _console_hint(console, base, token, buyer_key)
            console.print("The server keeps running: try the commands above. Ctrl-C stops everything.")
            while True:
                time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    finally:
        console.print("stopped.")


def demo_verification(sandbox_port: int) -> dict[str, Any]:
    """The demo offer's checks at post: TrustedForm and Jornaya against the sandbox's look-alikes (its
    origin on the allow-list), the phone check, and a flag-only email check (docs/verification.md)."""
    return {
        "verification": [
            {"type": "trustedform", "allowed_hosts": [f"http://127.0.0.1:{sandbox_port}"]},
            {"type": "jornaya"},
            {"type": "phone"},
            {"type": "email", "mode": "flag"},
        ],
        "verification_timeout_ms": 1500,
    }


def demo_consent(i: int, sandbox_port: int) -> dict[str, Any]:
    """A post's consent: every seventh carries a certificate that does not match its lead (refused)."""
    cert = f"{'nomatch' if i % 7 == 6 else 'pass'}{i:033d}"
    return {
        "tcpa": True,
        "trustedform_cert_url": f"http://127.0.0.1:{sandbox_port}/trustedform/{cert}",
        "jornaya_leadid": f"{i:08d}-0000-4000-8000-000000000000",
    }


def _stop(signum: int, frame: Any) -> None:
    raise SystemExit(0)


async def _stream(console: Console, base: str, token: str, count: int, *, sandbox_port: int) -> None:
    partner = {"Authorization": f"Bearer {POSTING_KEY}"}
    admin = {"Authorization": f"Bearer {token}"}
    wins: Counter[str] = Counter()
    totals = {"pings": 0, "sold": 0, "revenue": 0, "payout": 0, "refused": 0}
    rng = random.Random(7)
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=30)) as client:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("pings and posts", total=count)
            for i in range(count):
                lead = {"state": rng.choice(STATES), "zip": f"{rng.randint(10000, 99999)}", "age": rng.randint(62, 80)}
                answer = await _json(
                    client, "POST", "/v1/ping", headers=partner, json={"lead": lead, "partner_lead_id": f"demo-{i}"}
                )
                totals["pings"] += 1
                record = await _json(client, "GET", f"/v1/admin/pings/{answer['ping_id']}", headers=admin)
                if answer["status"] == "bids":
                    first = rng.choice(FIRST)
                    full = {
                        **lead,
                        "first_name": first,
                        "last_name": "Example",
                        "phone": f"305555{rng.randint(1000, 9999)}",
                        "email": f"{first.lower()}.{i}@example.com",
                    }
                    result = await _json(
                        client,
                        "POST",
                        "/v1/post",
                        headers=partner,
                        json={"ping_id": answer["ping_id"], "lead": full, "consent": demo_consent(i, sandbox_port)},
                    )
                    record = await _json(client, "GET", f"/v1/admin/pings/{answer['ping_id']}", headers=admin)
                    totals["refused"] += any(r["reason"] == "verification_failed" for r in result.get("rejected", []))
                    for sale in result.get("sales", []):
                        totals["sold"] += 1
                        totals["payout"] += sale["payout_cents"]
                    for w in record["waterfall"]:
                        if w["post_outcome"] == "post_accepted":
                            totals["revenue"] += w["bid_cents"]
                            wins[w["buyer_id"]] += 1
                progress.console.print(_waterfall_table(i + 1, lead, record))
                progress.advance(task)
    summary = Table(title="running summary")
    for column in ("pings", "sold", "refused at post", "revenue", "partner payout", "margin"):
        summary.add_column(column, justify="right")
    summary.add_row(
        str(totals["pings"]),
        str(totals["sold"]),
        str(totals["refused"]),
        _usd(totals["revenue"]),
        _usd(totals["payout"]),
        _usd(totals["revenue"] - totals["payout"]),
    )
    console.print(summary)
    console.print("wins per buyer: " + ", ".join(f"{b} {n}" for b, n in wins.most_common()))


async def _buyer_key(base: str, token: str) -> str:
    """A buyer key of charlie, to see the console as a buyer sees it."""
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=30)) as client:
        made = await _json(
            client,
            "POST",
            "/v1/admin/api-keys",
            headers={"Authorization": f"Bearer {token}"},
            json={"kind": "buyer", "buyer": "charlie", "name": "demo buyer console"},
        )
        return str(made["key"])


def _console_hint(console: Console, base: str, token: str, buyer_key: str) -> None:
    console.print(f"\nconsole: [bold]{base}/console[/bold]   sign in with the admin token [bold]{token}[/bold]")
    console.print(f"         (or as buyer charlie with [bold]{buyer_key}[/bold])", highlight=False)


async def _call(console: Console, base: str, token: str) -> None:
    """The Medicare call auction: Buyer C's $91 wins against $85 and $72, $46 over the $45 static price;
    the call connects and bills. Then a second call whose winner is busy goes to the standby."""
    console.rule("a Medicare call auction")
    admin = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=30)) as client:
        platform = (
            await _json(
                client,
                "POST",
                "/v1/admin/api-keys",
                headers=admin,
                json={"kind": "call_platform", "name": "demo telephony"},
            )
        )["key"]
        tel = {"Authorization": f"Bearer {platform}"}
        lead = {"state": "FL", "zip": "33109", "age": 65, "caller_area_code": "305", "ivr_interested": True}
        answer = await _json(
            client,
            "POST",
            "/v1/ping",
            json={"lead": lead, "channel": "call"},
            headers={"Authorization": f"Bearer {POSTING_KEY}"},
        )
        record = await _json(client, "GET", f"/v1/admin/pings/{answer['ping_id']}", headers=admin)
        console.print(_waterfall_table(0, lead, record))
        bids = {w["buyer_id"]: w["bid_cents"] for w in record["waterfall"] if w["bid_cents"] is not None}
        won = next((w for w in record["waterfall"] if w["outcome"] == "won"), None)
        if won is None or not answer["bids"]:
            console.print("no buyer took the call")
            return
        static = (await _json(client, "GET", "/v1/admin/contracts/foxtrot-rtb", headers=admin))["price_cents"]
        others = ", ".join(
            _usd(c) for b, c in sorted(bids.items(), key=lambda kv: -kv[1]) if b not in (won["buyer_id"], "foxtrot")
        )
        console.print(
            f"{won['buyer_id']} bids [bold]{_usd(won['bid_cents'])}[/bold] and wins against {others}: "
            f"{_usd(won['bid_cents'] - static)} more than the {_usd(static)} static price"
        )
        bid = answer["bids"][0]
        caller = {**lead, "first_name": "Grace", "last_name": "Example", "phone": "3055550188"}
        await _json(
            client,
            "POST",
            f"/v1/calls/{answer['ping_id']}/connected",
            headers=tel,
            json={"bid_id": bid["bid_id"], "lead": caller},
        )
        completed = await _json(
            client,
            "POST",
            f"/v1/calls/{answer['ping_id']}/completed",
            headers=tel,
            json={"bid_id": bid["bid_id"], "duration_s": 300},
        )
        console.print(f"  transferred to {bid['transfer']}, connected, completed after 300 s: {completed}")

        console.rule("a call whose winner is busy")
        lead = {"state": "FL", "zip": "33139", "age": 66, "caller_area_code": "305", "ivr_interested": True}
        answer = await _json(
            client,
            "POST",
            "/v1/ping",
            json={"lead": lead, "channel": "call"},
            headers={"Authorization": f"Bearer {POSTING_KEY}"},
        )
        if not answer["bids"]:
            console.print("no buyer took the call")
            return
        bid = answer["bids"][0]
        console.print(
            f"call ping {answer['ping_id']}: transfer to {bid['transfer']} for {_usd(bid['payout_cents'])} payout"
        )
        failed = await _json(
            client,
            "POST",
            f"/v1/calls/{answer['ping_id']}/failed",
            headers=tel,
            json={"bid_id": bid["bid_id"], "reason": "busy"},
        )
        nxt = failed.get("next_bid")
        console.print(f"  busy -> next standby: {nxt['transfer'] if nxt else None}")
        if nxt:
            caller = {**lead, "first_name": "Grace", "last_name": "Example", "phone": "3055550199"}
            connected = await _json(
                client,
                "POST",
                f"/v1/calls/{answer['ping_id']}/connected",
                headers=tel,
                json={"bid_id": nxt["bid_id"], "lead": caller},
            )
            console.print(f"  connected: {connected}")
            completed = await _json(
                client,
                "POST",
                f"/v1/calls/{answer['ping_id']}/completed",
                headers=tel,
                json={"bid_id": nxt["bid_id"], "duration_s": 240},
            )
            console.print(f"  completed after 240 s: {completed}")
        record = await _json(client, "GET", f"/v1/admin/pings/{answer['ping_id']}", headers=admin)
        console.print(_waterfall_table(0, lead, record))
        console.print("  timeline: " + " -> ".join(e["type"] for e in record["events"]))


async def _json(client: aiohttp.ClientSession, method: str, path: str, **kwargs: Any) -> Any:
    """One call to the demo server, its JSON answer (aiohttp: the demo runs on a plain install)."""
    async with client.request(method, path, **kwargs) as response:
        return await response.json()


def _waterfall_table(n: int, lead: dict[str, Any], record: dict[str, Any]) -> Table:
    table = Table(
        title=f"ping {n}: {lead['state']} {lead['zip']} age {lead['age']} -> {record['status']} "
        f"in {record['decision_ms']} ms",
        title_justify="left",
    )
    for column in ("contract", "outcome", "detail", "bid", "source", "rtb ms", "post"):
        table.add_column(column)
    if record.get("verification"):
        table.caption = "verification: " + ", ".join(
            f"{v['type']} {v['result']}" + (f" ({v['detail']})" if v["detail"] else "") for v in record["verification"]
        )
        table.caption_justify = "left"
    for w in record["waterfall"]:
        style = "green" if w["outcome"] == "won" else ("yellow" if w["outcome"] == "lost_to_higher_bid" else "dim")
        table.add_row(
            w["contract_id"],
            f"[{style}]{w['outcome']}[/{style}]",
            w["detail"] or "",
            _usd(w["bid_cents"]) if w["bid_cents"] is not None else "",
            w["source"] or "",
            str(w["rtb_latency_ms"] or ""),
            w["post_outcome"] or "",
        )
    return table


def _usd(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


def _hints(console: Console, base: str, token: str) -> None:
    console.print("\nTry it yourself:")
    for cmd in (
        f"export TOKEN={token}",
        f"curl -s -X POST {base}/v1/ping -H 'Authorization: Bearer {POSTING_KEY}' -H 'content-type: application/json' "
        '-d \'{"lead": {"state": "FL", "zip": "33109", "age": 67}}\'',
        f'curl -s {base}/v1/admin/pings?limit=5 -H "Authorization: Bearer $TOKEN"',
        f'curl -s {base}/v1/admin/buyers/charlie -H "Authorization: Bearer $TOKEN"',
        f"curl -s '{base}/v1/admin/reports/summary?group_by=buyer' -H \"Authorization: Bearer $TOKEN\"",
    ):
        console.print(f"  {cmd}", soft_wrap=True, highlight=False)
