"""The operator's changes through the admin API (deposits, reversals, reconciliation, pauses, caps)
and the clock's moves (docs/simulator.md). Each runs alone in its step."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tests.sim.actions import HOUR, MINUTE, Action, code
from tests.sim.injector import InjectedError
from tests.sim.scenario import ZONES, next_boundary_ms
from tests.sim.world import ADMIN_TOKEN, Instance

if TYPE_CHECKING:
    from tests.sim.simulation import Simulation


def deposit(sim: Simulation) -> Action:
    buyer = sim.rng.choice(sim.scenario.buyers)["id"]
    amount = sim.rng.randint(10, 150) * 100
    ref = sim.model.next("dep-")

    async def run(inst: Instance) -> str:
        r = await sim.send(
            inst,
            "POST",
            f"/v1/admin/buyers/{buyer}/deposits",
            token=ADMIN_TOKEN,
            body={"amount_cents": amount, "reference": ref},
        )
        sim.expect("deposit", r, {201})
        return str(r.status_code)

    return Action(f"deposit {buyer} {amount}", run, solo=True)


def reverse(sim: Simulation) -> Action | None:
    if not sim.model.sale_ids:
        return None
    sale = sim.rng.choice(sim.model.sale_ids)

    async def run(inst: Instance) -> str:
        r = await sim.send(inst, "POST", f"/v1/admin/sales/{sale}/reverse", token=ADMIN_TOKEN, body={"reason": "sim"})
        sim.expect("reverse", r, {200, 409})
        return f"{r.status_code} {code(r.json())}"

    return Action(f"reverse {sale}", run, solo=True)


def reconcile(sim: Simulation) -> Action:
    """The operator settles a delivery whose result is unknown (a crash or an error mid-delivery)."""
    pick = sim.rng.random()
    verb = "record-sale" if sim.rng.random() < 0.5 else "void"

    async def run(inst: Instance) -> str:
        r = await sim.send(inst, "GET", "/v1/admin/reconciliation?limit=100", token=ADMIN_TOKEN)
        sim.expect("reconciliation list", r, {200})
        items = r.json()["items"] if r.status_code == 200 else []
        if not items:
            return "nothing to settle"
        item = items[int(pick * len(items))]
        before = await sim.reservation(item["bid_id"])
        r = await sim.send(inst, "POST", f"/v1/admin/reconciliation/{item['delivery_id']}/{verb}", token=ADMIN_TOKEN)
        sim.expect(f"reconciliation {verb}", r, {200, 409})
        answer = r.json()
        if r.status_code == 200 and answer.get("sale_id"):
            sim.model.sale_ids.append(answer["sale_id"])
            if before is not None and before["state"] not in ("held", "posting"):
                await sim.operator_sold(before)
        return f"{verb} {item['delivery_id']} ({item['contract_id']}): {r.status_code} {answer}"

    return Action(f"reconcile ({verb})", run, solo=True)


_PATHS = {"contract": "contracts", "buyer": "buyers", "campaign": "campaigns", "partner": "partners", "offer": "offers"}


def pause_or_resume(sim: Simulation) -> Action:
    rng, model, sc = sim.rng, sim.model, sim.scenario
    if model.paused and rng.random() < 0.6:
        kind, ident = sorted(model.paused)[rng.randrange(len(model.paused))]
        status = "active"
    else:
        kind = rng.choices(list(_PATHS), [5, 2, 2, 1, 1])[0]
        ident = rng.choice(
            {
                "contract": [c.id for c in sc.contracts],
                "buyer": [b["id"] for b in sc.buyers],
                "campaign": [c["id"] for c in sc.campaigns],
                "partner": ["pa", "pb"],
                "offer": [o["id"] for o in sc.offers],
            }[kind]
        )
        status = "paused"

    async def run(inst: Instance) -> str:
        r = await sim.send(
            inst, "PATCH", f"/v1/admin/{_PATHS[kind]}/{ident}", token=ADMIN_TOKEN, body={"status": status}
        )
        sim.expect("pause/resume", r, {200})
        if r.status_code == 200:
            (model.paused.add if status == "paused" else model.paused.discard)((kind, ident))
        return str(r.status_code)

    return Action(f"{'pause' if status == 'paused' else 'resume'} {kind} {ident}", run, solo=True)


def change_caps(sim: Simulation) -> Action:
    rng = sim.rng
    contract = rng.choice(sim.scenario.contracts)
    caps = dict(sim.model.caps[contract.id])
    period = rng.choice(["daily", "weekly", "monthly"])
    if period in caps and rng.random() < 0.15:
        del caps[period]
    else:
        caps[period] = max(0, caps.get(period, 3) + rng.choice([-2, -1, 1, 2]))

    async def run(inst: Instance) -> str:
        r = await sim.send(inst, "PATCH", f"/v1/admin/contracts/{contract.id}", token=ADMIN_TOKEN, body={"caps": caps})
        sim.expect("caps", r, {200})
        if r.status_code == 200:
            await sim.caps_changed(contract.id, caps)
        return str(r.status_code)

    return Action(f"caps {contract.id} {caps}", run, solo=True)


LIVE_TABLES = (
    "contract_usage",
    "buyer_funds",
    "reservations",
    "ledger_entries",
    "dedup_records",
    "contracts",
    "buyers",
)


async def _live(sim: Simulation) -> dict[str, list[str]]:
    """The rows a replay must never change (docs/replay.md), as sorted text."""

    async def unit(tx: Any) -> dict[str, list[str]]:
        return {t: sorted(repr(tuple(r)) for r in await tx.fetch(f"SELECT * FROM {t}")) for t in LIVE_TABLES}

    return await sim.checker.read(unit)


def replay(sim: Simulation) -> Action:
    """A what-if replay of the last week with a changed cap or a paused buyer: it finishes (or fails
    cleanly under injected faults) and changes nothing live."""
    rng = sim.rng
    if rng.random() < 0.5:
        contract = rng.choice(sim.scenario.contracts)
        setup: dict[str, Any] = {"contracts": [{"id": contract.id, "caps": {"daily": rng.randint(0, 6)}}]}
    else:
        setup = {"buyers": [{"id": rng.choice(sim.scenario.buyers)["id"], "status": "paused"}]}

    async def run(inst: Instance) -> str:
        today = datetime.fromtimestamp(sim.clock.now_ms() / 1000, UTC).date()
        before = await _live(sim)
        body = {"from": (today - timedelta(days=7)).isoformat(), "to": today.isoformat(), "setup": setup}
        r = await sim.send(inst, "POST", "/v1/admin/replays", token=ADMIN_TOKEN, body=body)
        sim.expect("replay", r, {202})
        status = "not started"
        if r.status_code == 202:
            for _ in range(500):
                job = await sim.send(inst, "GET", f"/v1/admin/replays/{r.json()['id']}", token=ADMIN_TOKEN)
                status = job.json().get("status", "?") if job.status_code == 200 else str(job.status_code)
                if status != "running":
                    break
                await asyncio.sleep(0.005)
        if await _live(sim) != before:
            sim.violation("replay_changes_nothing", f"a replay with {setup} changed live rows")
        return status

    return Action(f"replay {setup}", run, solo=True)


# --- the clock -------------------------------------------------------------------------------


def tick(sim: Simulation) -> Action:
    """A small step of time, run among other actions (it lands somewhere in their interleaving)."""
    ms = sim.rng.choice([50, 400, 1500, 1500, 4000, 9000, 20_000])

    async def run(inst: Instance) -> str:
        sim.clock.advance(ms)
        return f"now {sim.clock.now_ms()}"

    return Action(f"tick +{ms}ms", run)


def sweep_leases(sim: Simulation) -> Action:
    """An instance's lease upkeep (docs/scale-out.md): its used-up and expiring leases, and every
    instance's expired ones (a crashed instance's too), end and give back what they did not use."""

    async def run(inst: Instance) -> str:
        book = inst.app.state.services.auction.leases
        if book is None:
            return "no leases"
        try:
            return f"{await book.sweep()} lease(s) ended"
        except InjectedError:  # the timer in production logs it and sweeps again later
            return "sweep failed (injected), nothing ended"

    return Action("sweep leases", run)


def leap(sim: Simulation) -> Action:
    """A large move: to just before the next local midnight of some zone, or minutes to hours on."""
    rng, clock = sim.rng, sim.clock
    now = clock.now_ms()
    if rng.random() < 0.6:
        zone = rng.choice(ZONES)
        target = next_boundary_ms(now, zone) - rng.randint(200, 6000)
        how = f"to {target - now}ms before midnight {zone}"
    else:
        target = now + rng.choice([2 * MINUTE, 15 * MINUTE, HOUR, 5 * HOUR, 20 * HOUR])
        how = f"+{(target - now) // 1000}s"
    # A connected call is completed before it could outlast the offer's maximum duration.
    deadline = sim.earliest_call_deadline()
    if deadline is not None:
        target = min(target, deadline)
    target = max(target, now)

    async def run(inst: Instance) -> str:
        if target > clock.now_ms():
            clock.set(target)
        return f"now {clock.now_ms()}"

    return Action(f"leap {how}", run, solo=True)
