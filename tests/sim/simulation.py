"""One seeded run: set the world up through the admin API, then step: choose actions from the seed,
run them concurrently on their instances, restart crashed instances, check every invariant
(docs/simulator.md). A failure carries the seed, the invariant and the trace."""

from __future__ import annotations

import asyncio
import random
import shutil
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from pingpost import faults
from pingpost.clock import ManualClock
from pingpost.db.store import Store, Tx
from tests.sim import actions, invariants, money_actions, operator_actions, platform_actions, webhook_actions
from tests.sim.actions import Action
from tests.sim.buyers import FakeBuyers
from tests.sim.injector import CURRENT_ACTION, FaultInjector, FaultRates
from tests.sim.model import CallRec, Model
from tests.sim.scenario import VERTICAL, Scenario, draw
from tests.sim.world import ADMIN_TOKEN, Databases, Instance, checker_store, fixed_ids, inline_threadpool

MAX_CALL_MS = 3600 * 1000  # the calls offer's max_call_duration_s
CALL_MARGIN_MS = 10 * 60_000  # complete a connected call this long before it could lapse


@dataclass
class Options:
    seed: int
    store: str = "sqlite"
    steps: int = 200
    instances: int = 3
    rates: FaultRates = field(default_factory=FaultRates)
    keep_going: bool = False  # note each invariant's first violation and carry on (to survey defects)
    long_calls: bool = False  # let calls outlast the offer's max_call_duration_s (docs/simulator.md)
    leases: bool = False  # instances serve from process leases of cap slots and funds (docs/scale-out.md)


@dataclass
class Failure:
    invariant: str
    detail: str
    step: int


@dataclass
class Finding:
    invariant: str
    detail: str
    step: int
    seconds: float


@dataclass
class Result:
    seed: int
    store: str
    steps: int
    seconds: float
    failure: Failure | None
    trace: list[str]
    points: Counter[str]
    injected: Counter[str]
    findings: list[Finding] = field(default_factory=list)  # keep-going runs: each invariant's first violation

    @property
    def ok(self) -> bool:
        return self.failure is None


class Violation(Exception):
    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


def _crashed(exc: BaseException) -> bool:
    if isinstance(exc, faults.SimulatedCrash):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_crashed(e) for e in exc.exceptions)
    return False


class Simulation:
    def __init__(self, opts: Options, url: str, workdir: Path) -> None:
        self.opts = opts
        self.url = url
        self.workdir = workdir
        self.rng = random.Random(f"{opts.seed}:schedule")
        self.scenario: Scenario = draw(random.Random(f"{opts.seed}:world"), instances=opts.instances)
        self.clock = ManualClock(self.scenario.start_ms)
        self.trace: list[str] = []
        self.pii_values = tuple(v for c in self.scenario.consumers for v in c.values())
        self.buyers = FakeBuyers(random.Random(f"{opts.seed}:buyers"), self.clock, self.pii_values)
        self.injector = FaultInjector(random.Random(f"{opts.seed}:faults"), opts.rates, self.log)
        self.model = Model()
        self.violations: list[Violation] = []
        self.instances: list[Instance] = []
        self.step_no = 0
        self.findings: dict[str, Finding] = {}
        self._started = 0.0
        self._checker: Store | None = None

    # --- helpers the actions use ------------------------------------------------------------

    def log(self, line: str) -> None:
        self.trace.append(line)

    def violation(self, invariant: str, detail: str) -> None:
        self.violations.append(Violation(invariant, detail))

    @property
    def checker(self) -> Store:
        assert self._checker is not None
        return self._checker

    async def send(
        self,
        inst: Instance,
        method: str,
        path: str,
        *,
        token: str,
        body: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> httpx.Response:
        assert inst.http is not None
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return await inst.http.request(
            method,
            path,
            content=orjson.dumps(body) if body is not None else None,
            headers={**headers, "Content-Type": "application/json"},
        )

    def expect(self, what: str, r: httpx.Response, statuses: set[int]) -> None:
        self.expect_status(what, r.status_code, r.json() if r.content else None, statuses)

    def expect_status(self, what: str, status: int, body: Any, statuses: set[int]) -> None:
        if status in statuses:
            return
        if status >= 500 and self.injector.errors_this_step:
            return  # an exception was injected in this step
        self.violation("answers_as_specified", f"{what} answered {status} {body}")

    async def check_ping_answer(self, answer: dict[str, Any], *, test: bool) -> None:
        """The ping's stored waterfall and reservations say what its answer says (a retried unit
        decides afresh; a waterfall never says won without a reservation: docs/simulator.md)."""
        ping_id = answer["ping_id"]

        async def unit(tx: Tx) -> tuple[Any, set[str]]:
            row = await tx.fetchrow("SELECT status, waterfall FROM pings WHERE id = :p", {"p": ping_id})
            held = {
                r["bid_id"]
                for r in await tx.fetch("SELECT bid_id FROM reservations WHERE ping_id = :p", {"p": ping_id})
            }
            return row, held

        row, held = await self.checker.read(unit)
        if row is None:
            self.violation("answers_as_specified", f"ping {ping_id} answered 200 but was not stored")
            return
        won = {w.get("bid_id") for w in orjson.loads(row["waterfall"]) if w["outcome"] == "won"}
        answered = {b["bid_id"] for b in answer["bids"]}
        if answered != won:
            self.violation(
                "retries_decide_afresh",
                f"ping {ping_id} answered {answer['status']} with {len(answered)} bids; its waterfall "
                f"says won for {len(won)} bids",
            )
        if not test and not answered <= held:
            self.violation("won_has_reservation", f"ping {ping_id} answered bids without reservations")

    async def caps_changed(self, contract: str, caps: dict[str, int]) -> None:
        """Record the caps now in force; a period already over a lowered cap keeps what it has."""
        self.model.caps[contract] = dict(caps)
        now = self.clock.now_ms()
        tables = await self.checker.read(invariants.load)
        counts = invariants.live_counts(tables.reservations, now, contract)
        counts.update({k: n for k, n in invariants.leased(tables)[0].items() if k[0] == contract})
        for (c, kind, key), taken in counts.items():
            cap = caps.get(kind)
            if cap is not None and taken > cap:
                self.model.allowance[(c, kind, key)] = max(taken, self.model.allowance.get((c, kind, key), 0))

    async def reservation(self, bid_id: str) -> dict[str, Any] | None:
        row = await self.checker.read(
            lambda tx: tx.fetchrow("SELECT * FROM reservations WHERE bid_id = :b", {"b": bid_id})
        )
        return None if row is None else dict(row)

    async def operator_sold(self, reservation: dict[str, Any]) -> None:
        """The operator recorded a sale whose reservation had lapsed (docs/crash-safety.md): it counts in
        its period again without a cap check and is charged without a hold. Both are allowed."""
        buyer = reservation["buyer_id"]
        self.model.overdraft[buyer] = self.model.overdraft.get(buyer, 0) + int(reservation["amount_cents"])
        self.model.spend_exempt.add(("contract", reservation["contract_id"], reservation["day_key"]))
        self.model.spend_exempt.add(("buyer", buyer, reservation["buyer_day_key"]))
        await self.caps_changed(reservation["contract_id"], self.model.caps[reservation["contract_id"]])

    def earliest_call_deadline(self) -> int | None:
        """When the first call that may be up must be ended (see `platform_actions.before_deadline`)."""
        if self.opts.long_calls:
            return None
        deadlines = [self._deadline(c) for c in self.model.open_calls() if c.connect_sent_ms]
        return min(deadlines) if deadlines else None

    @staticmethod
    def _deadline(call: CallRec) -> int:
        return call.connect_sent_ms + MAX_CALL_MS - CALL_MARGIN_MS

    # --- the run ----------------------------------------------------------------------------

    async def run(self) -> Result:
        started = self._started = time.perf_counter()
        failure: Failure | None = None
        self.log(
            f"seed {self.opts.seed} store {self.opts.store}: start {self.scenario.start_note}, "
            f"skews {self.scenario.skews_ms} ms, rules {[o.get('distribution') for o in self.scenario.offers]}"
        )
        try:
            with fixed_ids(self.opts.seed), inline_threadpool():
                await self._run_steps()
        except Violation as v:
            failure = Failure(v.invariant, v.detail, self.step_no)
        except (Exception, asyncio.CancelledError) as exc:
            current = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and current is not None and current.cancelling():
                raise  # the run itself is being cancelled
            failure = Failure("no_unexpected_exception", f"{type(exc).__name__}: {exc}", self.step_no)
            self.trace += traceback.format_exception(exc)[-6:]
        return Result(
            self.opts.seed,
            self.opts.store,
            self.step_no,
            time.perf_counter() - started,
            failure,
            self.trace,
            self.injector.seen,
            self.injector.injected,
            list(self.findings.values()),
        )

    async def _run_steps(self) -> None:
        try:
            async with checker_store(self.url, self.clock) as checker:
                self._checker = checker
                for index, skew in enumerate(self.scenario.skews_ms):
                    self.instances.append(await self._instance(index, 0, skew))
                await self._setup()
                await invariants.check(self)
                self._raise_violations()
                for step in range(1, self.opts.steps + 1):
                    self.step_no = step
                    await self._step()
                    await invariants.check(self)
                    self._raise_violations()
                await webhook_actions.drain(self)
                self._raise_violations()
        finally:
            for inst in self.instances:
                await inst.stop()

    def _raise_violations(self) -> None:
        if self.violations and self.opts.keep_going:
            for v in self.violations:
                if v.invariant not in self.findings:
                    self.findings[v.invariant] = Finding(
                        v.invariant, v.detail, self.step_no, time.perf_counter() - self._started
                    )
                    self.log(f"  VIOLATION {v}")
            self.violations.clear()
        if self.violations:
            first = self.violations[0]
            for other in self.violations[1:4]:
                self.log(f"  also: {other}")
            raise first

    async def _instance(self, index: int, generation: int, skew: int) -> Instance:
        inst = Instance(
            index=index,
            generation=generation,
            skew_ms=skew,
            clock=self.clock,
            url=self.url,
            buyers=self.buyers,
            injector=self.injector,
            workdir=self.workdir,
            leases=self.opts.leases,
        )
        await inst.start()
        return inst

    async def _admin(self, method: str, path: str, body: dict[str, Any], status: int = 201) -> Any:
        inst = self.instances[0]
        with inst.context():
            r = await self.send(inst, method, path, token=ADMIN_TOKEN, body=body)
        if r.status_code != status:
            raise RuntimeError(f"setup {method} {path} answered {r.status_code}: {r.text}")
        return r.json()

    async def _setup(self) -> None:
        sc = self.scenario
        await self._admin("POST", "/v1/admin/verticals", VERTICAL)
        for offer in sc.offers:
            await self._admin("POST", "/v1/admin/offers", offer)
        for partner in ("pa", "pb"):
            await self._admin("POST", "/v1/admin/partners", {"id": partner, "name": partner})
        for buyer in sc.buyers:
            await self._admin("POST", "/v1/admin/buyers", buyer)
            await self._admin(
                "POST",
                f"/v1/admin/buyers/{buyer['id']}/deposits",
                {"amount_cents": sc.deposits[buyer["id"]], "reference": f"initial-{buyer['id']}"},
            )
        for campaign in sc.campaigns:
            answer = await self._admin("POST", "/v1/admin/campaigns", campaign)
            self.model.posting_keys[campaign["id"]] = answer["posting_key"]
        for contract in sc.contracts:
            await self._admin("POST", "/v1/admin/contracts", money_actions.with_policy(self.opts.seed, contract.body))
            self.model.caps[contract.id] = dict(contract.caps)
        await webhook_actions.setup(self, self._admin)
        platform = await self._admin("POST", "/v1/admin/api-keys", {"kind": "call_platform", "name": "sim"})
        self.model.platform_key = platform["key"]
        self.log(
            f"setup: {len(sc.offers)} offers, {len(sc.contracts)} contracts, {len(sc.campaigns)} campaigns, "
            f"{len(sc.consumers)} consumers"
        )

    # --- one step ---------------------------------------------------------------------------

    def _choose(self) -> list[Action]:  # noqa: C901 - the table of weighted step kinds, read top to bottom
        rng, model = self.rng, self.model
        due = [
            c
            for c in model.open_calls()
            if c.connect_sent_ms and self.clock.now_ms() >= self._deadline(c) and not self.opts.long_calls
        ]
        for call in due:
            ending = platform_actions.before_deadline(self, call)
            if ending:
                return ending
        if rng.random() < 0.2:
            kind = rng.choices(
                ["leap", "late_post", "deposit", "reverse", "pause", "caps", "reconcile", "money", "replay"],
                [4, 2, 2, 1, 2, 2, 1, 12, 1],
            )[0]
            if kind == "money":
                return money_actions.choose(self)
            chosen: Action | None = None
            if kind == "leap":
                chosen = operator_actions.leap(self)
            elif kind == "late_post" and model.open_form_pings():
                chosen = actions.late_post(self, rng.choice(model.open_form_pings()))
            elif kind == "deposit":
                chosen = operator_actions.deposit(self)
            elif kind == "reverse":
                chosen = operator_actions.reverse(self)
            elif kind == "pause":
                chosen = operator_actions.pause_or_resume(self)
            elif kind == "caps":
                chosen = operator_actions.change_caps(self)
            elif kind == "reconcile":
                chosen = operator_actions.reconcile(self)
            elif kind == "replay":
                chosen = operator_actions.replay(self)
            if chosen is not None:
                return [chosen]
        group: list[Action] = []
        for _ in range(rng.choice([1, 2, 2, 3, 3, 4, 5])):
            kind = rng.choices(
                ["ping", "post", "direct", "pair", "call", "tick", "resend", "burst", "hooks", "sweep"],
                [10, 6, 2, 1, 4, 3, 3, 1, 2, 2 if self.opts.leases else 0],
            )[0]
            if kind == "sweep":
                group.append(operator_actions.sweep_leases(self))
            elif kind == "ping":
                group.append(actions.ping(self))
            elif kind == "post" and model.open_form_pings():
                rec = rng.choice(model.open_form_pings())
                group += actions.post_twice(self, rec) if rng.random() < 0.06 else [actions.post(self, rec)]
            elif kind == "direct":
                group.append(actions.direct_post(self))
            elif kind == "pair":
                group += actions.direct_post_pair(self)
            elif kind == "burst":
                group += actions.burst(self)
            elif kind == "call":
                group += platform_actions.call_event(self)
            elif kind == "tick":
                group.append(operator_actions.tick(self))
            elif kind == "hooks":
                group.append(webhook_actions.send(self))
            elif kind == "resend" and (again := actions.resend(self)) is not None:
                group.append(again)
        return group or [actions.ping(self)]

    async def _step(self) -> None:
        chosen = self._choose()
        placed = [(self.instances[self.rng.randrange(len(self.instances))], a) for a in chosen]
        self.injector.errors_this_step = 0
        self.log(f"step {self.step_no} @{self.clock.now_ms()}: {len(placed)} action(s)")
        tasks = []
        for inst, action in placed:
            task = asyncio.create_task(self._perform(inst, action))
            inst.tasks.add(task)
            tasks.append(task)
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for inst in self.instances:
            inst.tasks.clear()
        for (inst, action), outcome in zip(placed, outcomes, strict=True):
            if isinstance(outcome, asyncio.CancelledError) and inst.dead:
                # Cancelled before it began: its instance died first. The sender retries it.
                self.log(f"  [{inst.name}] {action.label} -> never ran (its instance died)")
                action.on_crash()
            elif isinstance(outcome, BaseException):
                raise outcome
        for index, inst in enumerate(self.instances):
            if inst.dead:
                await inst.stop()
                self.instances[index] = await self._instance(index, inst.generation + 1, inst.skew_ms)
                self.log(f"  restarted {self.instances[index].name} on the same database")

    async def _perform(self, inst: Instance, action: Action) -> None:
        CURRENT_ACTION.set(action.label)
        with inst.context():
            try:
                outcome = await action.run(inst)
            except BaseException as exc:
                if inst.dead or _crashed(exc):
                    inst.dead = True
                    inst.cancel_tasks(but=asyncio.current_task())
                    self.log(f"  [{inst.name}] {action.label} -> died ({type(exc).__name__})")
                    action.on_crash()
                    return
                raise
        self.log(f"  [{inst.name}] {action.label} -> {outcome}")


async def run_seed(opts: Options, databases: Databases) -> Result:
    url = await databases.create()
    workdir = databases.workdir()
    try:
        return await Simulation(opts, url, workdir).run()
    finally:
        await databases.drop(url)
        shutil.rmtree(workdir, ignore_errors=True)
