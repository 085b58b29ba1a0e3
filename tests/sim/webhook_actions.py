"""The webhook sender in the simulation (docs/simulator.md): a subscription to every event, a
receiver that fails some attempts, sender passes run by random instances (which crash at the
sender's fault points like anywhere else), and the invariants: no attempt is sent twice, every
dispatched event has its delivery, and at the end every event has been delivered or is retrying."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pingpost.clock import use_clock
from pingpost.events.sender import WebhookSender
from pingpost.outbound import HttpResult
from tests.sim.actions import Action
from tests.sim.world import Instance

if TYPE_CHECKING:
    from tests.sim.simulation import Simulation

HOOK_URL = "http://hooks.sim/all"
LEASE_MS = 30_000


@dataclass
class Receiver:
    """The subscriber: answers 500 to a seeded share of requests, counts every request per event."""

    rng: random.Random
    sent: Counter[str] = field(default_factory=Counter)

    async def request(
        self, method: str, url: str, *, headers: dict[str, str], body: bytes | None, timeout_ms: int
    ) -> HttpResult:
        self.sent[headers.get("Pingpost-Event-Id", "")] += 1
        return HttpResult(500 if self.rng.random() < 0.3 else 200, b"", 1)


@dataclass
class Hooks:
    receiver: Receiver
    senders: dict[str, WebhookSender] = field(default_factory=dict)  # per instance (and generation)


def hooks_of(sim: Simulation) -> Hooks:
    found: Hooks = sim.__dict__.setdefault("hooks", Hooks(Receiver(random.Random(f"{sim.opts.seed}:hooks"))))
    return found


async def setup(sim: Simulation, admin: Any) -> None:
    made = await admin("POST", "/v1/admin/webhooks", {"url": HOOK_URL, "events": ["*"]})
    sim.log(f"setup: webhook {made['id']} for every event")


def _sender(sim: Simulation, inst: Instance) -> WebhookSender:
    hooks = hooks_of(sim)
    if inst.name not in hooks.senders:
        assert inst.store is not None
        hooks.senders[inst.name] = WebhookSender(inst.store, hooks.receiver, holder=inst.name, lease_ms=LEASE_MS)
    return hooks.senders[inst.name]


def send(sim: Simulation) -> Action:
    async def run(inst: Instance) -> str:
        try:
            result = await _sender(sim, inst).run_once()
        except Exception as exc:  # as `run_forever`: the pass is lost, the next one tries again
            return f"pass failed ({type(exc).__name__})"
        if not result.leader:
            return "not the sender"
        return f"dispatched {result.dispatched}, attempted {result.attempted}, delivered {result.delivered}"

    return Action("webhook sender pass", run)


async def check(sim: Simulation) -> None:
    """No attempt sent twice (requests per event never exceed the attempts taken for it), and every
    dispatched event since the subscription has exactly one delivery."""
    hooks = hooks_of(sim)

    async def unit(tx: Any) -> tuple[list[Any], list[Any]]:
        attempts = await tx.fetch(
            "SELECT event_id, CAST(SUM(attempts) AS BIGINT) AS n, COUNT(*) AS deliveries FROM webhook_deliveries "
            "WHERE target = 'webhook' GROUP BY event_id"
        )
        # as the sender decides: events from the subscription's creation on (its own clock's time)
        dispatched = await tx.fetch(
            "SELECT e.id FROM events e JOIN webhooks w ON w.url = :url "
            "WHERE e.dispatched_at IS NOT NULL AND e.created_at >= w.created_at",
            {"url": HOOK_URL},
        )
        return list(attempts), list(dispatched)

    attempts, dispatched = await sim.checker.read(unit)
    taken = {r["event_id"]: (int(r["n"]), int(r["deliveries"])) for r in attempts}
    for event_id, sent in hooks.receiver.sent.items():
        if sent > taken.get(event_id, (0, 0))[0]:
            sim.violation("no_webhook_attempt_sent_twice", f"{event_id}: {sent} requests, {taken.get(event_id)}")
    for row in dispatched:
        if taken.get(row["id"], (0, 0))[1] != 1:
            sim.violation("every_event_has_its_delivery", f"{row['id']}: {taken.get(row['id'])}")


async def drain(sim: Simulation) -> None:
    """At the end: senders run (the clock moving past any dead sender's lease) until no event waits to
    be dispatched; then every event since the subscription has its delivery (checked by `check`)."""
    for _ in range(20):
        inst = sim.instances[0]
        with use_clock(inst.clock):  # no faults injected: the drain only lets the outbox empty
            await _sender(sim, inst).run_once()

        async def undispatched(tx: Any) -> int:
            return int(await tx.fetchval("SELECT COUNT(*) FROM events WHERE dispatched_at IS NULL"))

        if await sim.checker.read(undispatched) == 0:
            break
        sim.clock.advance(LEASE_MS + 1_000)
    else:
        sim.violation("every_event_has_its_delivery", "events still undispatched after the drain")
    await check(sim)
