"""The call platform's events (`connected`, `failed`, `completed`), in the order a platform sends
them, and the same event sent twice at once (docs/simulator.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tests.sim.actions import Action, code
from tests.sim.model import CallRec, Resend
from tests.sim.world import Instance

if TYPE_CHECKING:
    from tests.sim.simulation import Simulation


def _call_event(
    sim: Simulation, call: CallRec, kind: str, body: dict[str, Any], on_answer: Callable[[int, Any], str]
) -> Action:
    path = f"/v1/calls/{call.ping.ping_id}/{kind}"
    model = sim.model

    async def run(inst: Instance) -> str:
        sent = sim.clock.now_ms()
        r = await sim.send(inst, "POST", path, token=model.platform_key, body=body)
        if r.status_code >= 500:
            sim.expect(f"call {kind}", r, set())
            model.resends.append(
                Resend(
                    kind,
                    path,
                    model.platform_key,
                    body,
                    None,
                    r.status_code,
                    r.json(),
                    sent,
                    unanswered=True,
                    on_answer=on_answer,
                )
            )
            return f"{r.status_code} (the platform retries)"
        if r.status_code == 200:  # a recorded event: sending it again must answer the same
            model.resends.append(Resend(kind, path, model.platform_key, body, None, r.status_code, r.json(), sent))
        return on_answer(r.status_code, r.json())

    def crashed() -> None:
        model.resends.append(
            Resend(
                kind,
                path,
                model.platform_key,
                body,
                None,
                first_at_ms=sim.clock.now_ms(),
                unanswered=True,
                on_answer=on_answer,
            )
        )

    return Action(f"call {kind} {call.ping.ping_id} {body['bid_id']}", run, on_crash=crashed)


def connected_twice(sim: Simulation, call: CallRec) -> list[Action]:
    """The platform sends one `connected` twice at once (a retry racing the first, on other hosts)."""
    answers: list[Any] = []
    return [connected(sim, call, answers=answers), connected(sim, call, answers=answers)]


def connected(sim: Simulation, call: CallRec, *, answers: list[Any] | None = None) -> Action:
    bid_id = call.active or ""
    call.connected = bid_id
    started = sim.clock.now_ms()
    call.connect_sent_ms = call.connect_sent_ms or started
    body = {"bid_id": bid_id, "lead": {**call.ping.lead, **call.ping.consumer.pii()}}

    def on_answer(status: int, answer: Any) -> str:
        sim.expect_status("call connected", status, answer, {200, 409, 410})
        if answers is not None and status == 200:
            answers.append(answer)
            if len(answers) == 2 and answers[0] != answers[1]:
                sim.violation(
                    "retries_answer_the_same",
                    f"one connected sent twice at once answered {answers[0]} and {answers[1]}",
                )
        if status == 200:
            if started >= call.ping.expiry_bound_ms:
                sim.violation(
                    "posts_claim_only_live_reservations",
                    f"call {call.ping.ping_id} connected at {started} on bid {bid_id}, lapsed by "
                    f"{call.ping.expiry_bound_ms} on the one clock: answered {answer}",
                )
            call.connected_at_ms = started  # early rather than late: the deadline below is conservative
            if answer.get("sale_id") and answer["sale_id"] not in sim.model.sale_ids:
                sim.model.sale_ids.append(answer["sale_id"])
        elif status == 410 or code(answer) != "concurrency_cap_reached":
            call.done = True  # lapsed, or stuck (the simulator gives up on this call)
        else:
            call.connected = None  # the platform reports `failed` next, to ring the next bid
            call.connect_sent_ms = 0
        return f"{status} {answer}"

    return _call_event(sim, call, "connected", body, on_answer)


def failed(sim: Simulation, call: CallRec) -> Action:
    bid_id = call.active or ""
    call.active = None
    body = {"bid_id": bid_id, "reason": sim.rng.choice(["no_answer", "busy", "rejected"])}

    def on_answer(status: int, answer: Any) -> str:
        sim.expect_status("call failed", status, answer, {200, 410})
        nxt = answer.get("next_bid") if status == 200 else None
        call.active = nxt["bid_id"] if nxt else None
        call.connected = None
        call.done = call.active is None
        return f"{status} next={call.active}"

    return _call_event(sim, call, "failed", body, on_answer)


def completed(sim: Simulation, call: CallRec) -> Action:
    bid_id = call.connected or ""
    call.completing = True
    body = {"bid_id": bid_id, "duration_s": sim.rng.choice([5, 30, 59, 60, 61, 240])}

    def on_answer(status: int, answer: Any) -> str:
        sim.expect_status("call completed", status, answer, {200})
        call.done = True
        return f"{status} {answer}"

    return _call_event(sim, call, "completed", body, on_answer)


def before_deadline(sim: Simulation, call: CallRec) -> list[Action]:
    """A call about to outlast the offer's maximum duration ends first: its unanswered event is sent
    again, or it is completed (a reservation lapsing under a connected call would let a late
    `completed` charge without a hold; the simulator keeps to calls the platform ends in time)."""
    from tests.sim.actions import resend

    pending = sim.model.pending_event(call)
    if pending is not None:
        again = resend(sim, pending)
        return [again] if again is not None else []
    if call.connected_at_ms and not call.completing:
        return [completed(sim, call)]
    call.done = True  # never answered as connected, nothing pending: it never came up
    return []


def call_event(sim: Simulation) -> list[Action]:
    calls = [c for c in sim.model.open_calls() if not c.completing and sim.model.pending_event(c) is None]
    if not calls:
        return []
    call = sim.rng.choice(calls)
    if call.connected:
        return [completed(sim, call)] if call.connected_at_ms else []
    if call.active is None:
        return []
    roll = sim.rng.random()
    if roll < 0.08:
        return connected_twice(sim, call)
    return [connected(sim, call) if roll < 0.65 else failed(sim, call)]
