"""The login gate's policy on its own: a manual clock, and "threads" that run a password
check only when the test says so. The real users, hashes and authenticator are used;
the flood over real sockets is in tests/security/test_login_flood.py."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from test_queue import Clock

from pigeon.auth.audit import AuditLog
from pigeon.auth.authenticator import Authenticator, LoginRefused
from pigeon.auth.authorization import Identity
from pigeon.auth.gate import GateSettings, LoginAttempt, LoginGate
from pigeon.auth.refusals import BURST, WINDOW, RefusalLog, source_of
from pigeon.auth.users import User, UserStore, hash_password

PASSWORD = "right"


class Threads:
    """An offload whose work runs when :meth:`finish` is called, oldest first."""

    def __init__(self) -> None:
        self.started: list[tuple[Callable[[], Any], Callable[[Any], None]]] = []
        self.runs = 0

    def __call__(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self.started.append((work, done))

    def finish(self) -> None:
        work, done = self.started.pop(0)
        self.runs += 1
        done(work())

    def finish_all(self) -> None:
        while self.started:
            self.finish()


class Answers:
    def __init__(self) -> None:
        self.got: list[Identity | BaseException] = []

    def __call__(self, outcome: Identity | BaseException) -> None:
        self.got.append(outcome)

    @property
    def refused(self) -> int:
        return sum(isinstance(a, LoginRefused) for a in self.got)

    @property
    def admitted(self) -> int:
        return sum(isinstance(a, Identity) for a in self.got)


@pytest.fixture
def users() -> UserStore:
    store = UserStore()
    for name in ("ann", "bob"):
        store.put_user(cheap_user(name, PASSWORD))
    return store


def cheap_user(name: str, password: str) -> User:
    # A cheap hash keeps the test fast; the gate does not care how slow it is.
    return User(name, hash_password(password, log_n=4))


def make_gate(
    users: UserStore, clock: Clock, offload: Threads, audit: AuditLog | None = None, **settings: Any
) -> LoginGate:
    authenticator = Authenticator(users, audit=audit, refusals=RefusalLog(audit, clock))
    return LoginGate(authenticator, clock, offload, GateSettings(**settings))


def login(
    gate: LoginGate, answers: Answers, password: str, *, name: str = "ann", peer: str = "10.0.0.1:5"
) -> LoginAttempt | None:
    return gate.login(
        "PLAIN", (name, password), peer=peer, loopback=False, certificate=None, answer=answers
    )


def test_a_verified_password_is_answered_at_once_without_a_thread(users: UserStore) -> None:
    clock, threads, answers = Clock(), Threads(), Answers()
    gate = make_gate(users, clock, threads)
    assert login(gate, answers, PASSWORD) is not None  # first time: a check
    threads.finish_all()
    assert answers.admitted == 1
    assert login(gate, answers, PASSWORD) is None  # answered inside login()
    assert answers.admitted == 2 and threads.runs == 1


def test_the_cache_never_matches_a_wrong_or_changed_password(users: UserStore) -> None:
    assert users.authenticate("ann", PASSWORD) is not None
    assert users.cached("ann", PASSWORD) is not None
    assert users.cached("ann", PASSWORD + "x") is None
    users.put_user(cheap_user("ann", "new"))  # as the API does
    assert users.cached("ann", PASSWORD) is None
    assert users.authenticate("ann", PASSWORD) is None
    assert users.authenticate("ann", "new") is not None
    users.delete_user("ann")
    assert users.cached("ann", "new") is None and users.authenticate("ann", "new") is None


def test_a_password_changed_during_its_check_is_refused(users: UserStore) -> None:
    clock, threads, answers = Clock(), Threads(), Answers()
    gate = make_gate(users, clock, threads)
    login(gate, answers, PASSWORD)
    users.put_user(cheap_user("ann", "new"))
    threads.finish_all()
    assert answers.refused == 1 and users.cached("ann", PASSWORD) is None


def test_same_credentials_share_one_check(users: UserStore) -> None:
    clock, threads, answers = Clock(), Threads(), Answers()
    gate = make_gate(users, clock, threads)
    for port in range(50):
        login(gate, answers, PASSWORD, peer=f"10.0.0.1:{port}")
    threads.finish_all()
    assert answers.admitted == 50 and threads.runs == 1


def test_checks_of_clients_that_left_never_run(users: UserStore) -> None:
    clock, threads, answers = Clock(), Threads(), Answers()
    gate = make_gate(users, clock, threads, threads=1)
    attempts = [login(gate, answers, f"wrong-{n}") for n in range(5)]
    for attempt in attempts:
        assert attempt is not None
        attempt.cancel()
    threads.finish_all()
    assert threads.runs == 1  # the one already running when its client left
    assert answers.got == [] and gate.pending == 0


def test_addresses_take_turns(users: UserStore) -> None:
    clock, threads, answers = Clock(), Threads(), Answers()
    gate = make_gate(users, clock, threads, threads=1)
    for n in range(6):
        login(gate, answers, f"wrong-{n}", peer="10.0.0.1:1")
    login(gate, answers, PASSWORD, name="bob", peer="10.0.0.2:1")
    threads.finish_all()
    # The second address waited only for the check already running, not for the backlog.
    assert [isinstance(a, Identity) for a in answers.got].index(True) == 1
    assert len(answers.got) == 7


def test_one_address_never_takes_every_thread(users: UserStore) -> None:
    clock, threads, answers = Clock(), Threads(), Answers()
    gate = make_gate(users, clock, threads, threads=2)
    for n in range(6):
        login(gate, answers, f"wrong-{n}", peer="10.0.0.1:1")
    assert len(threads.started) == 1 and gate.pending == 6
    login(gate, answers, PASSWORD, name="bob", peer="10.0.0.2:1")
    assert len(threads.started) == 2  # started at once, on the thread left free
    threads.started.pop(1)[1](True)
    assert answers.admitted == 1 and answers.refused == 0


def test_an_address_out_of_budget_gets_no_checks_and_late_refusals(users: UserStore) -> None:
    clock, threads, answers = Clock(), Threads(), Answers()
    gate = make_gate(users, clock, threads, checks_per_source=3, check_rate=0.5, refusal_delay=2.0)
    for n in range(3):  # the budget: checked, refused at once but the last
        login(gate, answers, f"wrong-{n}")
        threads.finish_all()
    assert answers.refused == 2 and gate.held == 1 and threads.runs == 3
    for n in range(10):  # out of budget: not checked, answered late
        assert login(gate, answers, f"more-{n}") is not None
    assert threads.started == [] and answers.refused == 2 and gate.held == 11
    clock.advance(2.0)
    assert answers.refused == 13 and gate.held == 0
    # Another address is not affected, and a verified password is not either.
    login(gate, answers, PASSWORD, name="bob", peer="10.0.0.2:1")
    threads.finish_all()
    assert answers.admitted == 1
    assert users.authenticate("ann", PASSWORD) is not None  # verified elsewhere
    assert login(gate, answers, PASSWORD) is None and answers.admitted == 2
    clock.advance(2.0)  # one check earned back
    login(gate, answers, "wrong-again")
    assert len(threads.started) == 1


def test_successes_give_their_check_back(users: UserStore) -> None:
    clock, threads, answers = Clock(), Threads(), Answers()
    gate = make_gate(users, clock, threads, checks_per_source=2, check_rate=0.001)
    names = ["cat", "dan", "eve", "fay"]
    for name in names:
        users.put_user(cheap_user(name, PASSWORD))
    for name in names:  # four checks on a budget of two
        login(gate, answers, PASSWORD, name=name)
        threads.finish_all()
    assert answers.admitted == 4 and threads.runs == 4
    login(gate, answers, "wrong")
    login(gate, answers, "wrong-too")
    threads.finish_all()
    assert threads.runs == 6
    login(gate, answers, "wrong-three")  # failures spent the budget
    assert threads.started == [] and threads.runs == 6


def test_pending_checks_are_capped_over_all_addresses(users: UserStore) -> None:
    clock, threads, answers = Clock(), Threads(), Answers()
    gate = make_gate(users, clock, threads, pending=4, refusal_delay=1.0)
    for n in range(10):
        login(gate, answers, f"wrong-{n}", peer=f"10.0.{n}.1:1")
    assert gate.pending == 4 and gate.held == 6
    threads.finish_all()
    clock.advance(1.0)
    assert answers.refused == 10


def test_refusals_are_audited_one_by_one_then_summed_up(users: UserStore) -> None:
    clock, threads, answers = Clock(), Threads(), Answers()
    stream = io.StringIO()
    gate = make_gate(users, clock, threads, AuditLog(stream), checks_per_source=2)
    for n in range(40):
        login(gate, answers, f"wrong-{n}", name="ann" if n % 2 else "nobody")
        threads.finish_all()
    assert len(stream.getvalue().splitlines()) == BURST
    clock.advance(WINDOW)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["login.failed"] * BURST + ["login.failed.summary"]
    summary = lines[-1]
    assert summary["peer"] == "10.0.0.1" and summary["count"] == 40 - BURST
    assert sum(summary["users"].values()) == sum(summary["reasons"].values()) == 40 - BURST
    assert "wrong-" not in stream.getvalue()  # never a password


def test_verify_answers_true_or_false_and_shares_the_budget(users: UserStore) -> None:
    clock, threads, got = Clock(), Threads(), Answers()
    gate = make_gate(users, clock, threads, checks_per_source=2)
    verify = gate.verify
    assert verify("ann", PASSWORD, peer="10.0.0.1:1", mechanism="HTTP basic", answer=got)
    assert verify("ann", "wrong", peer="10.0.0.1:2", mechanism="HTTP basic", answer=got)
    threads.finish_all()
    assert sorted(got.got, key=str) == [False, True]
    assert verify("ann", PASSWORD, peer="10.0.0.1:3", mechanism="HTTP basic", answer=got) is None
    assert got.got[-1] is True  # verified before: at once
    verify("nobody", "x", peer="10.0.0.1:4", mechanism="HTTP basic", answer=got)
    verify("bob", PASSWORD, peer="10.0.0.1:5", mechanism="HTTP basic", answer=got)
    assert threads.started == []  # the failures spent the address's budget
    clock.advance(GateSettings().refusal_delay)
    assert got.got[-2:] == [False, False]


def test_source_addresses() -> None:
    assert source_of("127.0.0.1:5672") == "127.0.0.1"
    assert source_of("::1:5672") == "::1"
    assert source_of("2001:db8::17:40000") == "2001:db8::/64"
    assert source_of("::ffff:10.1.2.3:40000") == "10.1.2.3"
    assert source_of("") == ""
