"""The actions the scheduler interleaves, each through an instance's HTTP API: partner pings, posts
and direct posts, call-platform events, operator changes, clock moves and retries. Every parameter
is drawn from the scheduler's random when the action is chosen, so a seed picks the same actions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pingpost.domain.consumer import email_sha256, phone_sha256
from tests.sim.model import CallRec, PingRec, Resend
from tests.sim.scenario import CALL_OFFER, DIRECT_OFFER, FORM_OFFERS, STATES, ZONES, Consumer, next_boundary_ms
from tests.sim.world import ADMIN_TOKEN, Instance

if TYPE_CHECKING:
    from tests.sim.simulation import Simulation

Run = Callable[[Instance], Awaitable[str]]
MINUTE = 60_000
HOUR = 60 * MINUTE
IDEMPOTENCY_MS = 24 * HOUR  # an Idempotency-Key's answer stands this long


@dataclass
class Action:
    label: str
    run: Run
    solo: bool = False  # runs alone in its step (operator changes, big clock moves)
    on_crash: Callable[[], None] = field(default=lambda: None)


def _code(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code"))
    return ""


def draw_lead(sim: Simulation) -> dict[str, Any]:
    rng = sim.rng
    lead: dict[str, Any] = {"state": rng.choice(STATES), "zip": f"{rng.randint(10000, 99999)}",
                            "age": rng.randint(58, 80)}
    if rng.random() < 0.6:
        lead["coverage"] = rng.choice(["none", "original", "advantage"])
    if rng.random() < 0.3:
        lead["smoker"] = rng.random() < 0.5
    return lead


def consumer_hashes(sim: Simulation, consumer: Consumer) -> dict[str, str]:
    roll = sim.rng.random()
    hashes = {"phone_sha256": phone_sha256(consumer.phone) or "", "email_sha256": email_sha256(consumer.email)}
    if roll < 0.15:
        del hashes["email_sha256"]
    elif roll < 0.25:
        del hashes["phone_sha256"]
    return hashes


def idempotency_key(sim: Simulation, rate: float) -> str | None:
    return sim.model.next("idem-") if sim.rng.random() < rate else None


# --- partner: pings --------------------------------------------------------------------------


def ping(sim: Simulation, *, channel: str | None = None, consumer: Consumer | None = None,
         campaign: str | None = None) -> Action:
    rng, sc, model = sim.rng, sim.scenario, sim.model
    channel = channel or rng.choices(["form", "call", "callback"], [7, 2, 1])[0]
    offer = rng.choice(FORM_OFFERS) if channel == "form" else CALL_OFFER
    if campaign is not None:
        offer = next(c["offer"] for c in sc.campaigns if c["id"] == campaign)
    campaign = campaign or rng.choice(sc.campaigns_for(offer))["id"]
    consumer = consumer or rng.choice(sc.consumers)
    lead = draw_lead(sim)
    body: dict[str, Any] = {"lead": lead}
    if channel != "form" or rng.random() < 0.5:
        body["channel"] = channel
    if rng.random() < 0.85:
        body["consumer"] = consumer_hashes(sim, consumer)
    test = rng.random() < 0.04
    if test:
        body["test"] = True
    key = idempotency_key(sim, 0.3)
    token = model.posting_keys[campaign]
    ttl = sc.ttl_ms(offer, channel)

    async def run(inst: Instance) -> str:
        sent = sim.clock.now_ms()
        r = await sim.send(inst, "POST", "/v1/ping", token=token, body=body, key=key)
        end = sim.clock.now_ms()
        if key is not None:
            model.resends.append(Resend("ping", "/v1/ping", token, body, key, r.status_code, r.json(), sent))
        sim.expect("ping", r, {200, 403, 429})
        if r.status_code != 200:
            return f"{r.status_code} {_code(r.json())}"
        answer = r.json()
        await sim.check_ping_answer(answer, test=test)
        if answer["bids"]:
            rec = PingRec(answer["ping_id"], offer, campaign, channel, lead, consumer, answer["bids"], test,
                          expiry_bound_ms=end + ttl)
            model.pings[rec.ping_id] = rec
            if channel != "form":
                model.calls.append(CallRec(rec, active=answer["bids"][0]["bid_id"]))
        return f"{answer['status']} {answer['ping_id']} payouts={[b['payout_cents'] for b in answer['bids']]}"

    def crashed() -> None:
        if key is not None:
            model.resends.append(Resend("ping", "/v1/ping", token, body, key, first_at_ms=sim.clock.now_ms(),
                                        unanswered=True))

    return Action(f"ping {channel} {campaign} {consumer.first_name}{' test' if test else ''}", run,
                  on_crash=crashed)


# --- partner: posts --------------------------------------------------------------------------


def burst(sim: Simulation) -> list[Action]:
    """A partner's burst: several pings of one campaign at once (over a rate limit, if it has one)."""
    campaigns = sorted(sim.scenario.rate_limited) or [c["id"] for c in sim.scenario.campaigns]
    campaign = sim.rng.choice(campaigns)
    offer = next(c["offer"] for c in sim.scenario.campaigns if c["id"] == campaign)
    if offer == DIRECT_OFFER:
        return [direct_post(sim, campaign=campaign) for _ in range(sim.rng.randint(2, 4))]
    channel = "form" if offer != CALL_OFFER else sim.rng.choice(["call", "callback"])
    return [ping(sim, channel=channel, campaign=campaign) for _ in range(sim.rng.randint(3, 4))]


def post_twice(sim: Simulation, rec: PingRec) -> list[Action]:
    """A partner's double submit: the same post twice at once (on any instances)."""
    action = post(sim, rec, twice=True)
    return [action, Action(action.label + " again", action.run, on_crash=action.on_crash)]


def post(sim: Simulation, rec: PingRec, *, twice: bool = False) -> Action:
    rng, model = sim.rng, sim.model
    rec.posted = True
    bid_ids = [b["bid_id"] for b in rec.bids]
    chosen = None if rng.random() < 0.7 else set(rng.sample(bid_ids, k=rng.randint(1, len(bid_ids))))
    rec.chosen = chosen
    lead = {**rec.lead, **rec.consumer.pii()}
    if "coverage" not in lead and rng.random() < 0.3:
        lead["coverage"] = rng.choice(["none", "original", "advantage"])
    body: dict[str, Any] = {"ping_id": rec.ping_id, "lead": lead}
    if chosen is not None:
        body["bid_ids"] = sorted(chosen)
    if rng.random() < 0.9:
        body["consent"] = {"tcpa": True}
    key = idempotency_key(sim, 0.3)
    token = model.posting_keys[rec.campaign]

    async def run(inst: Instance) -> str:
        started = sim.clock.now_ms()
        r = await sim.send(inst, "POST", "/v1/post", token=token, body=body, key=key)
        if key is not None:
            model.resends.append(Resend("post", "/v1/post", token, body, key, r.status_code, r.json(), started))
        sim.expect("post", r, {200, 403, 409, 410} if twice else {200, 403, 410})
        delivered = sim.buyers.deliveries_for(rec.ping_id)
        if started >= rec.expiry_bound_ms and delivered:
            sim.violation("posts_claim_only_live_reservations",
                          f"post of {rec.ping_id} at {started} (its bids lapsed by {rec.expiry_bound_ms} on the "
                          f"one clock) answered {r.status_code} and delivered to {[d.contract for d in delivered]}")
        if r.status_code == 403 and key is None:
            rec.posted = False  # paused: the partner may post again later (with a key, its resend does)
        if r.status_code != 200:
            return f"{r.status_code} {_code(r.json())}"
        answer = r.json()
        model.sale_ids += [s["sale_id"] for s in answer["sales"] if s["sale_id"]]
        return f"{answer['status']} sales={len(answer['sales'])} rejected={[x['reason'] for x in answer['rejected']]}"

    def crashed() -> None:
        if key is not None:
            model.resends.append(Resend("post", "/v1/post", token, body, key, first_at_ms=sim.clock.now_ms(),
                                        unanswered=True))

    late = sim.clock.now_ms() >= rec.expiry_bound_ms
    return Action(f"post {rec.ping_id}{' (late)' if late else ''} bids={len(chosen) if chosen else 'all'}", run,
                  on_crash=crashed)


def late_post(sim: Simulation, rec: PingRec) -> Action:
    """Move the clock to just after the ping's bids lapsed, then post: within the hosts' clock skew
    an instance may still think they are live."""
    target = rec.expiry_bound_ms + sim.rng.randint(0, 6000)
    action = post(sim, rec)
    posting = action.run

    async def run(inst: Instance) -> str:
        if target > sim.clock.now_ms():
            sim.clock.set(target)
        return await posting(inst)

    return Action(f"{action.label} late, at {target}", run, solo=True, on_crash=action.on_crash)


def direct_post(sim: Simulation, *, consumer: Consumer | None = None, lead: dict[str, Any] | None = None,
                campaign: str | None = None) -> Action:
    rng, sc, model = sim.rng, sim.scenario, sim.model
    campaign = campaign or rng.choice(sc.campaigns_for(DIRECT_OFFER))["id"]
    consumer = consumer or rng.choice(sc.consumers)
    body: dict[str, Any] = {"lead": {**(lead or draw_lead(sim)), **consumer.pii()}, "consent": {"tcpa": True}}
    key = idempotency_key(sim, 0.2)
    token = model.posting_keys[campaign]

    async def run(inst: Instance) -> str:
        sent = sim.clock.now_ms()
        r = await sim.send(inst, "POST", "/v1/direct-post", token=token, body=body, key=key)
        if key is not None:
            model.resends.append(Resend("direct", "/v1/direct-post", token, body, key, r.status_code, r.json(),
                                        sent))
        sim.expect("direct post", r, {200, 403})
        if r.status_code != 200:
            return f"{r.status_code} {_code(r.json())}"
        answer = r.json()
        model.sale_ids += [s["sale_id"] for s in answer["sales"] if s["sale_id"]]
        return f"{answer['status']} {answer['ping_id']} sales={len(answer['sales'])}"

    def crashed() -> None:
        if key is not None:
            model.resends.append(Resend("direct", "/v1/direct-post", token, body, key,
                                        first_at_ms=sim.clock.now_ms(), unanswered=True))

    return Action(f"direct-post {campaign} {consumer.first_name}", run, on_crash=crashed)


def direct_post_pair(sim: Simulation) -> list[Action]:
    """The same consumer direct-posted twice at once (a partner's double submit)."""
    consumer = sim.rng.choice(sim.scenario.consumers)
    lead = draw_lead(sim)
    return [direct_post(sim, consumer=consumer, lead=lead), direct_post(sim, consumer=consumer, lead=lead)]


# --- the call platform ----------------------------------------------------------------------


def _call_event(sim: Simulation, call: CallRec, kind: str, body: dict[str, Any],
                on_answer: Callable[[int, Any], str]) -> Action:
    path = f"/v1/calls/{call.ping.ping_id}/{kind}"
    model = sim.model

    async def run(inst: Instance) -> str:
        sent = sim.clock.now_ms()
        r = await sim.send(inst, "POST", path, token=model.platform_key, body=body)
        if r.status_code >= 500:
            sim.expect(f"call {kind}", r, set())
            model.resends.append(Resend(kind, path, model.platform_key, body, None, r.status_code, r.json(), sent,
                                        unanswered=True, on_answer=on_answer))
            return f"{r.status_code} (the platform retries)"
        if r.status_code == 200:  # a recorded event: sending it again must answer the same
            model.resends.append(Resend(kind, path, model.platform_key, body, None, r.status_code, r.json(), sent))
        return on_answer(r.status_code, r.json())

    def crashed() -> None:
        model.resends.append(Resend(kind, path, model.platform_key, body, None, first_at_ms=sim.clock.now_ms(),
                                    unanswered=True, on_answer=on_answer))

    return Action(f"call {kind} {call.ping.ping_id} {body['bid_id']}", run, on_crash=crashed)


def connected_twice(sim: Simulation, call: CallRec) -> list[Action]:
    """The platform sends one `connected` twice at once (a retry racing the first, on other hosts)."""
    answers: list[Any] = []
    return [connected(sim, call, answers=answers), connected(sim, call, answers=answers)]


def connected(sim: Simulation, call: CallRec, *, answers: list[Any] | None = None) -> Action:
    bid_id = call.active or ""
    call.connected = bid_id
    started = sim.clock.now_ms()
    body = {"bid_id": bid_id, "lead": {**call.ping.lead, **call.ping.consumer.pii()}}

    def on_answer(status: int, answer: Any) -> str:
        sim.expect_status("call connected", status, answer, {200, 409, 410})
        if answers is not None and status == 200:
            answers.append(answer)
            if len(answers) == 2 and answers[0] != answers[1]:
                sim.violation("retries_answer_the_same",
                              f"one connected sent twice at once answered {answers[0]} and {answers[1]}")
        if status == 200:
            if started >= call.ping.expiry_bound_ms:
                sim.violation("posts_claim_only_live_reservations",
                              f"call {call.ping.ping_id} connected at {started} on bid {bid_id}, lapsed by "
                              f"{call.ping.expiry_bound_ms} on the one clock: answered {answer}")
            call.connected_at_ms = started  # early rather than late: the deadline below is conservative
            if answer.get("sale_id") and answer["sale_id"] not in sim.model.sale_ids:
                sim.model.sale_ids.append(answer["sale_id"])
        elif status == 410 or _code(answer) != "concurrency_cap_reached":
            call.done = True  # lapsed, or stuck (the simulator gives up on this call)
        else:
            call.connected = None  # the platform reports `failed` next, to ring the next bid
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
    call.done = True
    body = {"bid_id": bid_id, "duration_s": sim.rng.choice([5, 30, 59, 60, 61, 240])}

    def on_answer(status: int, answer: Any) -> str:
        sim.expect_status("call completed", status, answer, {200})
        return f"{status} {answer}"

    return _call_event(sim, call, "completed", body, on_answer)


def call_event(sim: Simulation) -> list[Action]:
    calls = sim.model.open_calls()
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


# --- retries ---------------------------------------------------------------------------------


def resend(sim: Simulation) -> Action | None:
    """Send an earlier request again: after a crash (the platform's or partner's retry), or a partner
    repeating a request under its Idempotency-Key (its answer stands for 24 hours)."""
    model, rng = sim.model, sim.rng
    if not model.resends:
        return None
    crashed = [r for r in model.resends if r.unanswered]
    refused = [r for r in model.resends if r.first_status is not None and r.first_status >= 300]
    pool = crashed if crashed and rng.random() < 0.7 else refused if refused and rng.random() < 0.5 \
        else model.resends
    item = pool[rng.randrange(len(pool))]
    model.resends.remove(item)

    async def run(inst: Instance) -> str:
        fresh = item.key is None or sim.clock.now_ms() - item.first_at_ms < IDEMPOTENCY_MS - 10_000
        r = await sim.send(inst, "POST", item.path, token=item.token, body=item.body, key=item.key)
        answer = r.json()
        replayed = r.headers.get("idempotent-replayed") == "true"
        final = r.status_code < 300 or r.status_code in (400, 404, 410, 413, 422) or (
            r.status_code == 409 and _code(answer) not in ("idempotency_in_flight", "event_conflict"))
        if replayed and not final:
            sim.violation("idempotency_records_only_final_answers",
                          f"{item.label} retry with key {item.key} replayed {r.status_code} {_code(answer)}")
        if item.key is None and r.status_code == 409 and _code(answer) == "event_conflict":
            first = "crashed" if item.first_status is None else f"answered {item.first_status}"
            sim.violation("call_events_survive_crashes",
                          f"{item.label} sent again with the same payload answered 409 event_conflict "
                          f"(the first attempt {first})")
        if fresh and item.first_status == 200 and r.status_code == 200 and answer != item.first_body:
            sim.violation("retries_answer_the_same",
                          f"{item.label} retry answered {answer}, first answer {item.first_body}")
        if r.status_code == 409 and _code(answer) == "idempotency_in_flight":
            model.resends.append(item)  # the crashed owner's lease has not lapsed yet
        if item.unanswered and r.status_code >= 500:
            sim.expect(item.label, r, set())
            model.resends.append(item)
            return f"{r.status_code} again"
        if item.unanswered and item.on_answer is not None:
            return item.on_answer(r.status_code, answer)
        if item.unanswered:
            sim.expect(item.label, r, {200, 403, 409, 410, 429})
        return f"{r.status_code} {_code(answer)}{' (replayed)' if replayed else ''}"

    return Action(f"resend {item.label} {item.path}{' unanswered' if item.unanswered else ''}"
                  f"{' key=' + item.key if item.key else ''}", run)


# --- the operator ----------------------------------------------------------------------------


def deposit(sim: Simulation) -> Action:
    buyer = sim.rng.choice(sim.scenario.buyers)["id"]
    amount = sim.rng.randint(10, 150) * 100
    ref = sim.model.next("dep-")

    async def run(inst: Instance) -> str:
        r = await sim.send(inst, "POST", f"/v1/admin/buyers/{buyer}/deposits", token=ADMIN_TOKEN,
                           body={"amount_cents": amount, "reference": ref})
        sim.expect("deposit", r, {201})
        return str(r.status_code)

    return Action(f"deposit {buyer} {amount}", run, solo=True)


def reverse(sim: Simulation) -> Action | None:
    if not sim.model.sale_ids:
        return None
    sale = sim.rng.choice(sim.model.sale_ids)

    async def run(inst: Instance) -> str:
        r = await sim.send(inst, "POST", f"/v1/admin/sales/{sale}/reverse", token=ADMIN_TOKEN,
                           body={"reason": "sim"})
        sim.expect("reverse", r, {200, 409})
        return f"{r.status_code} {_code(r.json())}"

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
        r = await sim.send(inst, "POST", f"/v1/admin/reconciliation/{item['delivery_id']}/{verb}",
                           token=ADMIN_TOKEN)
        sim.expect(f"reconciliation {verb}", r, {200, 409})
        answer = r.json()
        if r.status_code == 200 and answer.get("sale_id"):
            sim.model.sale_ids.append(answer["sale_id"])
            if before is not None and before["state"] not in ("held", "posting"):
                await sim.operator_sold(before)
        return f"{verb} {item['delivery_id']} ({item['contract_id']}): {r.status_code} {answer}"

    return Action(f"reconcile ({verb})", run, solo=True)


_PATHS = {"contract": "contracts", "buyer": "buyers", "campaign": "campaigns", "partner": "partners",
          "offer": "offers"}


def pause_or_resume(sim: Simulation) -> Action:
    rng, model, sc = sim.rng, sim.model, sim.scenario
    if model.paused and rng.random() < 0.6:
        kind, ident = sorted(model.paused)[rng.randrange(len(model.paused))]
        status = "active"
    else:
        kind = rng.choices(list(_PATHS), [5, 2, 2, 1, 1])[0]
        ident = rng.choice({"contract": [c.id for c in sc.contracts], "buyer": [b["id"] for b in sc.buyers],
                            "campaign": [c["id"] for c in sc.campaigns], "partner": ["pa", "pb"],
                            "offer": [o["id"] for o in sc.offers]}[kind])
        status = "paused"

    async def run(inst: Instance) -> str:
        r = await sim.send(inst, "PATCH", f"/v1/admin/{_PATHS[kind]}/{ident}", token=ADMIN_TOKEN,
                           body={"status": status})
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
        r = await sim.send(inst, "PATCH", f"/v1/admin/contracts/{contract.id}", token=ADMIN_TOKEN,
                           body={"caps": caps})
        sim.expect("caps", r, {200})
        if r.status_code == 200:
            await sim.caps_changed(contract.id, caps)
        return str(r.status_code)

    return Action(f"caps {contract.id} {caps}", run, solo=True)


# --- the clock -------------------------------------------------------------------------------


def tick(sim: Simulation) -> Action:
    """A small step of time, run among other actions (it lands somewhere in their interleaving)."""
    ms = sim.rng.choice([50, 400, 1500, 1500, 4000, 9000, 20_000])

    async def run(inst: Instance) -> str:
        sim.clock.advance(ms)
        return f"now {sim.clock.now_ms()}"

    return Action(f"tick +{ms}ms", run)


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
