"""The money after the sale (docs/simulator.md): buyers and the operator open full and partial
returns, the operator approves or denies them (sometimes the same decision, or both, sent at once to
two instances), reverses what returns left of a sale, and pays partners out (sometimes one reference
sent twice at once, or again later with another amount). Each step of these runs alone; its
parameters are drawn when it is chosen, the sale or return it acts on is picked from the database
when it runs."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from tests.sim.actions import Action, code
from tests.sim.world import ADMIN_TOKEN, Instance

if TYPE_CHECKING:
    from tests.sim.simulation import Simulation

REASONS = ["disconnected", "wrong_number", "duplicate"]
PARTNERS = ("pa", "pb")


def with_policy(seed: int, contract: dict[str, Any]) -> dict[str, Any]:
    """A contract's body with a return policy drawn from its own random (the world's draw is not
    disturbed): most take returns for 1 to 30 days, some approve at once, some claw nothing back,
    some limit the month's returns."""
    rng = random.Random(f"{seed}:returns:{contract['id']}")
    if rng.random() < 0.15:
        return contract  # the default policy: no returns
    policy: dict[str, Any] = {
        "window_days": rng.choice([1, 3, 7, 30, 30]),
        "reasons": REASONS,
        "auto_approve": rng.random() < 0.2,
        "partner_clawback": rng.random() < 0.8,
    }
    if rng.random() < 0.3:
        policy["max_return_rate_pct"] = rng.choice([10, 25, 50])
    return {**contract, "return_policy": policy}


async def _rows(sim: Simulation, sql: str) -> list[dict[str, Any]]:
    return [dict(r) for r in await sim.checker.read(lambda tx: tx.fetch(sql))]


async def _buyer_key(sim: Simulation, inst: Instance, buyer: str) -> str | None:
    """The buyer's API key, made the first time a buyer opens a return."""
    keys: dict[str, str] = sim.model.buyer_keys
    if buyer not in keys:
        r = await sim.send(
            inst, "POST", "/v1/admin/api-keys", token=ADMIN_TOKEN, body={"kind": "buyer", "buyer": buyer, "name": buyer}
        )
        sim.expect("buyer key", r, {201})
        if r.status_code != 201:
            return None
        keys[buyer] = r.json()["key"]
    return keys[buyer]


def open_return(sim: Simulation) -> Action:
    rng = sim.rng
    pick, by_buyer, wrong_buyer = rng.random(), rng.random() < 0.6, rng.random() < 0.05
    kind = rng.choices(["full", "partial", "over", "bad_reason"], [5, 4, 1, 1])[0]
    reason, share = rng.choice(REASONS), rng.random()

    async def run(inst: Instance) -> str:
        # mostly charged sales; now and then another status, which is refused
        sales = await _rows(sim, "SELECT id, buyer_id, price_cents, status FROM sales ORDER BY id")
        charged = [s for s in sales if s["status"] == "charged"]
        pool = charged if charged and pick < 0.85 else sales
        if not pool:
            return "no sale yet"
        newest = pool[-8:]  # most sales are past their window after a few leaps of the clock
        sale = newest[int(pick * len(newest)) % len(newest)]
        price = int(sale["price_cents"])
        body: dict[str, Any] = {"reason": "made_up" if kind == "bad_reason" else reason}
        if kind == "partial" and price > 1:
            body["amount_cents"] = max(1, min(price - 1, int(price * share)))
        elif kind == "over":
            body["amount_cents"] = price + 1
        if by_buyer:
            others = [b["id"] for b in sim.scenario.buyers if b["id"] != sale["buyer_id"]]
            buyer = others[0] if wrong_buyer and others else sale["buyer_id"]
            token = await _buyer_key(sim, inst, buyer)
            if token is None:
                return "no buyer key"
            path = f"/v1/buyer/sales/{sale['id']}/returns"
        else:
            token, path = ADMIN_TOKEN, f"/v1/admin/sales/{sale['id']}/returns"
        r = await sim.send(inst, "POST", path, token=token, body=body)
        sim.expect("open return", r, {201, 404, 409, 422})
        answer = r.json()
        if r.status_code == 201:
            sim.model.returns.append(answer["id"])
            if kind in ("over", "bad_reason") or (by_buyer and wrong_buyer and buyer != sale["buyer_id"]):
                sim.violation("answers_as_specified", f"a {kind} return of {sale['id']} was opened: {answer}")
            return f"{answer['id']} {answer['status']} {answer['amount_cents']}/{price}"
        if r.status_code == 404 and not (by_buyer and wrong_buyer):
            sim.violation("answers_as_specified", f"return of {sale['id']} by its own buyer answered 404")
        return f"{r.status_code} {code(answer)}"

    who = "buyer" if by_buyer else "admin"
    return Action(f"open {kind} return ({who})", run, solo=True)


def decide(sim: Simulation) -> list[Action]:
    """Approve or deny a return; one time in four the same decision twice at once (both answer the
    same, one transaction), one time in ten both decisions at once (one wins, the other is 409)."""
    rng = sim.rng
    pick, first = rng.random(), rng.choice(["approve", "approve", "deny"])
    roll = rng.random()
    decisions = [first, first] if roll < 0.25 else [first, "deny" if first == "approve" else "approve"]
    if roll >= 0.35:
        decisions = [first]
    answers: list[tuple[str, int, Any]] = []
    chosen: dict[str, str] = {}  # the one return both decisions of a pair act on

    def one(decision: str) -> Action:
        async def run(inst: Instance) -> str:
            pending = await _rows(sim, "SELECT id FROM returns WHERE status = 'pending' ORDER BY id")
            every = pending or await _rows(sim, "SELECT id FROM returns ORDER BY id")
            if not every and "id" not in chosen:
                return "no return yet"
            ident = chosen.setdefault("id", every[int(pick * len(every)) % len(every)]["id"] if every else "")
            r = await sim.send(inst, "POST", f"/v1/admin/returns/{ident}/{decision}", token=ADMIN_TOKEN, body={})
            sim.expect(f"{decision} return", r, {200, 409})
            answers.append((decision, r.status_code, r.json()))
            if len(answers) == len(decisions):
                _compare(sim, answers)
            return f"{ident}: {r.status_code} {r.json().get('status') or code(r.json())}"

        return Action(f"{decision} a return", run)

    return [one(d) for d in decisions]


def _compare(sim: Simulation, answers: list[tuple[str, int, Any]]) -> None:
    """Decisions sent at once: the same one answers the same twice; two different ones, one of each."""
    if len(answers) < 2 or any(status >= 500 for _, status, _ in answers):
        return
    (d1, s1, b1), (d2, s2, b2) = answers
    if d1 == d2 and (s1 != s2 or (s1 == 200 and b1 != b2)):
        sim.violation("decisions_idempotent", f"{d1} twice at once answered {s1} {b1} / {s2} {b2}")
    if d1 != d2 and sorted((s1, s2)) != [200, 409]:
        sim.violation("decisions_idempotent", f"approve and deny at once answered {s1} and {s2}")


def reverse_returned(sim: Simulation) -> Action:
    """The operator reverses what a partial return left of a sale (or a returned sale: 409)."""
    pick = sim.rng.random()

    async def run(inst: Instance) -> str:
        sales = await _rows(sim, "SELECT id FROM sales WHERE status IN ('partially_returned', 'returned') ORDER BY id")
        if not sales:
            return "no returned sale"
        sale = sales[int(pick * len(sales)) % len(sales)]["id"]
        r = await sim.send(inst, "POST", f"/v1/admin/sales/{sale}/reverse", token=ADMIN_TOKEN, body={"reason": "sim"})
        sim.expect("reverse after a return", r, {200, 409})
        return f"{sale}: {r.status_code} {code(r.json())}"

    return Action("reverse a returned sale", run, solo=True)


def payout(sim: Simulation) -> list[Action]:
    """Pay a partner part of what it is owed (sometimes more: 422). A reference is new, or one used
    before (the same amount answers the first payout; another is 409), or sent twice at once."""
    rng, model = sim.rng, sim.model
    partner, share, roll = rng.choice(PARTNERS), rng.random(), rng.random()
    used = [ref for ref in model.payouts if ref.startswith(f"{partner}:")]
    reuse = used[rng.randrange(len(used))] if used and roll < 0.3 else None
    reference = reuse or f"{partner}:{model.next('wire-')}"
    twice = reuse is None and roll > 0.8
    answers: list[tuple[int, Any]] = []
    drawn: dict[str, int] = {}  # one amount for both sends of a pair

    def one() -> Action:
        async def run(inst: Instance) -> str:
            if reuse is not None:
                amount = model.payouts[reuse] + (0 if share < 0.7 else 1)
            elif "amount" in drawn:
                amount = drawn["amount"]
            else:
                owed = int(
                    await sim.checker.read(
                        lambda tx: tx.fetchval(
                            "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM ledger_entries "
                            "WHERE account = :a",
                            {"a": f"partner:{partner}"},
                        )
                    )
                )
                amount = drawn.setdefault("amount", max(1, int(owed * share * 1.2)))
            r = await sim.send(
                inst,
                "POST",
                f"/v1/admin/partners/{partner}/payouts",
                token=ADMIN_TOKEN,
                body={"amount_cents": amount, "reference": reference},
            )
            sim.expect("payout", r, {201, 409, 422})
            body = r.json()
            if r.status_code == 201:
                model.payouts.setdefault(reference, amount)
                if reuse is not None and amount != model.payouts[reuse]:
                    sim.violation("payouts_idempotent", f"{reference} paid again with another amount: {body}")
            elif r.status_code == 409 and (reuse is None or amount == model.payouts[reuse]) and not twice:
                sim.violation("payouts_idempotent", f"{reference} with its own amount answered 409")
            answers.append((r.status_code, body))
            both = [b.get("transaction_id") for s, b in answers if s == 201]
            if twice and len(both) == 2 and both[0] != both[1]:
                sim.violation("payouts_idempotent", f"{reference} sent twice at once paid twice")
            return f"{reference} {amount}: {r.status_code} {body.get('transaction_id') or code(body)}"

        return Action(f"payout {partner} {reference}{' again' if reuse else ''}", run, solo=not twice)

    return [one(), one()] if twice else [one()]


def choose(sim: Simulation) -> list[Action]:
    kind = sim.rng.choices(["open", "decide", "reverse", "payout"], [5, 4, 1, 2])[0]
    if kind == "open":
        return [open_return(sim)]
    if kind == "decide":
        return decide(sim)
    if kind == "reverse":
        return [reverse_returned(sim)]
    return payout(sim)
