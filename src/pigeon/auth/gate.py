"""Where a password login waits for its check: off the event loop, fair, bounded.

A password verified before is answered by :meth:`Authenticator.begin` at once,
on the event loop, before any limit here applies: that is what lets a real
client in while someone else floods the broker with wrong passwords from the
same address. Everything else that needs an scrypt check (tens of
milliseconds of CPU) comes through the gate:

- at most ``threads`` checks run at once, off the loop, and at most
  ``threads - 1`` of one address (so another address finds a thread free); the
  others wait in a queue served round-robin by source address, an address with
  nothing waiting first, so one address cannot make another wait behind its
  backlog;
- logins with the same user and password share one check (an application
  opening fifty connections at start pays for one);
- a check whose clients have all disconnected is dropped before it runs;
- each source address has a budget of ``checks_per_source`` checks,
  earning back ``check_rate`` a second; a check that succeeds is given
  back, so only failures spend it. An address out of budget gets no more
  checks until it earns one: its logins are refused without looking at the
  password (a credential verified before still gets in, see above);
- at most ``pending`` checks wait or run, over all addresses;
- a refusal to an address out of budget is answered ``refusal_delay``
  seconds late, by a timer: it costs the client the wait and the broker
  nothing but an open socket (at most :data:`MAX_HELD` at once, past that
  refusals are answered at once).

Sans-IO: time and timers come from a :class:`Scheduler`, the threads from an
``offload`` function, so the policy is tested with a manual clock.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pigeon.auth.authenticator import Authenticator, LoginRefused
from pigeon.auth.authorization import Identity
from pigeon.auth.refusals import source_of
from pigeon.auth.users import PasswordCheck
from pigeon.core.ports import Scheduler, TimerHandle

# Runs a blocking function elsewhere and calls back on the loop with its result or
# the exception it raised.
Offload = Callable[[Callable[[], Any], Callable[[Any], None]], None]
# What a waiting login is told: an Identity (login) or True (verify) when admitted,
# LoginRefused (login) or False (verify) when not, another exception for a bug.
Answer = Callable[[Any], None]

MAX_HELD = 1000
# Budgets are kept per address; past this many addresses, full ones are forgotten.
MAX_SOURCES = 4096


@dataclass(frozen=True)
class GateSettings:
    checks_per_source: int = 10
    check_rate: float = 1.0
    pending: int = 64
    refusal_delay: float = 2.0
    threads: int = 2


class _Budget:
    """A token bucket: ``tokens`` checks left, refilled at the gate's rate."""

    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.stamp = now

    def refill(self, now: float, rate: float, burst: int) -> float:
        self.tokens = min(float(burst), self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        return self.tokens


@dataclass(eq=False)
class LoginAttempt:
    """One connection's login waiting at the gate: :meth:`cancel` when the client leaves."""

    gate: LoginGate
    mechanism: str
    name: str
    peer: str
    loopback: bool
    answer: Answer
    verify_only: bool = False  # a password for the management API: True or False
    job: _Job | None = None
    timer: TimerHandle | None = None
    done: bool = False

    def cancel(self) -> None:
        if not self.done:
            self.done = True
            self.gate.withdraw(self)

    def reply(self, outcome: Identity | bool | BaseException) -> None:
        if not self.done:
            self.done = True
            if self.verify_only and isinstance(outcome, LoginRefused):
                outcome = False
            self.answer(outcome)


@dataclass(eq=False)
class _Job:
    check: PasswordCheck
    source: str
    attempts: list[LoginAttempt] = field(default_factory=list)
    running: bool = False


class LoginGate:
    def __init__(
        self,
        authenticator: Authenticator,
        scheduler: Scheduler,
        offload: Offload,
        settings: GateSettings | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.scheduler = scheduler
        self.offload = offload
        self.settings = settings or GateSettings()
        self._budgets: dict[str, _Budget] = {}
        self._queues: OrderedDict[str, deque[_Job]] = OrderedDict()
        self._jobs: dict[tuple[str, bytes, bytes], _Job] = {}
        self._running = 0
        self._busy: Counter[str] = Counter()  # checks running per address
        # One address never has every thread: another address finds one free at once.
        self._per_source = max(1, self.settings.threads - 1)
        self.held = 0  # refusals waiting for their delay

    @property
    def pending(self) -> int:
        """Password checks waiting or running."""
        return len(self._jobs)

    def login(
        self,
        mechanism: str,
        credentials: tuple[str, str] | None,
        *,
        peer: str,
        loopback: bool,
        certificate: Mapping[str, Any] | None,
        answer: Answer,
    ) -> LoginAttempt | None:
        """connection.start-ok: ``answer`` gets the identity or :class:`LoginRefused`, at
        once (None is returned) or later (the attempt is returned, to cancel)."""
        name = credentials[0] if credentials is not None else ""
        attempt = LoginAttempt(self, mechanism, name, peer, loopback, answer)
        try:
            outcome = self.authenticator.begin(
                mechanism, credentials, peer=peer, loopback=loopback, certificate=certificate
            )
        except LoginRefused as refused:
            # No check ran, but a failure all the same: it spends the address's budget.
            source = source_of(peer)
            self._refuse(attempt, refused, late=not self._spend(source))
        else:
            if isinstance(outcome, PasswordCheck):
                self._enqueue(attempt, outcome)
            else:
                attempt.reply(outcome)
        return None if attempt.done else attempt

    def verify(
        self, name: str, password: str, *, peer: str, mechanism: str, answer: Answer
    ) -> LoginAttempt | None:
        """A user's password, for a door other than an AMQP login (the management API's
        basic auth): ``answer`` gets True or False, at once (None is returned) or later.
        Passwords only: a token or a certificate never stands in for a user's password."""
        attempt = LoginAttempt(self, mechanism, name, peer, True, answer, verify_only=True)
        users = self.authenticator.users
        if users.cached(name, password) is not None:
            attempt.reply(True)
        elif (check := users.password_check(name, password)) is not None:
            self._enqueue(attempt, check)
        else:
            refused = self.authenticator.refuse(name, peer, mechanism, "invalid credentials")
            self._refuse(attempt, refused, late=not self._spend(source_of(peer)))
        return None if attempt.done else attempt

    def _enqueue(self, attempt: LoginAttempt, check: PasswordCheck) -> None:
        job = self._jobs.get(check.key)
        if job is not None:  # the same user and password are being checked already
            job.attempts.append(attempt)
            attempt.job = job
            return
        source = source_of(attempt.peer)
        if len(self._jobs) >= self.settings.pending or not self._spend(source):
            refused = self.authenticator.refuse(
                attempt.name,
                attempt.peer,
                attempt.mechanism,
                f"not checked: too many failed or pending logins from {source}",
            )
            self._refuse(attempt, refused, late=True)
            return
        job = _Job(check, source, [attempt])
        attempt.job = job
        self._jobs[check.key] = job
        queue = self._queues.get(source)
        if queue is None:
            # An address with nothing waiting goes first (as fq_codel's new flows): a
            # client that logs in now and then is not served after a flooder's next check.
            queue = self._queues[source] = deque()
            self._queues.move_to_end(source, last=False)
        queue.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        while self._running < self.settings.threads:
            source = next((s for s in self._queues if self._busy[s] < self._per_source), None)
            if source is None:
                return
            queue = self._queues[source]
            job = queue.popleft()
            if queue:
                self._queues.move_to_end(source)  # round-robin over addresses
            else:
                del self._queues[source]
            job.running = True
            self._running += 1
            self._busy[source] += 1
            self.offload(job.check.run, partial(self._checked, job))

    def _checked(self, job: _Job, outcome: object) -> None:
        self._running -= 1
        self._busy[job.source] -= 1
        if not self._busy[job.source]:
            del self._busy[job.source]
        del self._jobs[job.check.key]
        if outcome is True:
            self._give_back(job.source)
        for attempt in job.attempts:
            attempt.job = None
            if isinstance(outcome, BaseException):
                attempt.reply(outcome)  # a bug: the connection answers 541 and logs it
            else:
                self._finish(attempt, job, outcome is True)
        self._dispatch()

    def _finish(self, attempt: LoginAttempt, job: _Job, ok: bool) -> None:
        authenticator = self.authenticator
        try:
            if not attempt.verify_only:
                attempt.reply(
                    authenticator.finish(
                        job.check,
                        ok,
                        mechanism=attempt.mechanism,
                        peer=attempt.peer,
                        loopback=attempt.loopback,
                    )
                )
            elif authenticator.users.checked(job.check, ok) is not None:
                attempt.reply(True)
            else:
                raise authenticator.refuse(
                    attempt.name, attempt.peer, attempt.mechanism, "invalid credentials"
                )
        except LoginRefused as refused:
            self._refuse(attempt, refused, late=self._out_of_budget(job.source))

    # -- refusals ------------------------------------------------------------------------

    def _refuse(self, attempt: LoginAttempt, refused: LoginRefused, *, late: bool) -> None:
        if not late or self.held >= MAX_HELD:
            attempt.reply(refused)
            return
        self.held += 1
        attempt.timer = self.scheduler.call_later(
            self.settings.refusal_delay, lambda: self._release(attempt, refused)
        )

    def _release(self, attempt: LoginAttempt, refused: LoginRefused) -> None:
        self.held -= 1
        attempt.timer = None
        attempt.reply(refused)

    def withdraw(self, attempt: LoginAttempt) -> None:
        """The client left: its refusal is not sent, its check not run if nobody else
        waits for it."""
        if attempt.timer is not None:
            attempt.timer.cancel()
            attempt.timer = None
            self.held -= 1
        job, attempt.job = attempt.job, None
        if job is None:
            return
        job.attempts.remove(attempt)
        self.authenticator.refuse(
            attempt.name,
            attempt.peer,
            attempt.mechanism,
            "client left before its password was checked",
        )
        if not job.attempts and not job.running:
            del self._jobs[job.check.key]  # nobody waits for it: never run
            queue = self._queues[job.source]
            queue.remove(job)
            if not queue:
                del self._queues[job.source]

    # -- budgets per address -----------------------------------------------------------

    def _budget(self, source: str) -> _Budget:
        now = self.scheduler.time()
        budget = self._budgets.get(source)
        if budget is None:
            if len(self._budgets) >= MAX_SOURCES:
                self._forget_full(now)
            budget = self._budgets[source] = _Budget(self.settings.checks_per_source, now)
        else:
            budget.refill(now, self.settings.check_rate, self.settings.checks_per_source)
        return budget

    def _spend(self, source: str) -> bool:
        budget = self._budget(source)
        if budget.tokens < 1:
            return False
        budget.tokens -= 1
        return True

    def _give_back(self, source: str) -> None:
        budget = self._budget(source)
        budget.tokens = min(float(self.settings.checks_per_source), budget.tokens + 1)

    def _out_of_budget(self, source: str) -> bool:
        return self._budget(source).tokens < 1

    def _forget_full(self, now: float) -> None:
        settings = self.settings
        for source in [
            source
            for source, budget in self._budgets.items()
            if budget.refill(now, settings.check_rate, settings.checks_per_source)
            >= settings.checks_per_source
        ]:
            del self._budgets[source]
