"""Exchanges and exchange types; expected texts and matches observed on RabbitMQ 3.10."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from pigeon.core.binding import Binding, DestinationKind
from pigeon.core.exchange import EXCHANGE_TYPES, TOPIC_CACHE_SIZE, Exchange
from pigeon.core.options import ExchangeOptions
from pigeon.errors import PreconditionFailed
from pigeon.operations.arguments import binding_problem, exchange_inequivalence, exchange_options

Q = DestinationKind.QUEUE
E = DestinationKind.EXCHANGE


def queue_binding(
    x: Exchange, queue: str, key: str = "", args: dict[str, Any] | None = None
) -> Binding:
    return Binding.make(x.name, queue, Q, key, args)


def bound(x: Exchange, queue: str, key: str = "", args: dict[str, Any] | None = None) -> Binding:
    binding = queue_binding(x, queue, key, args)
    assert x.bind(binding)
    return binding


def queues(destinations: set[tuple[DestinationKind, str]]) -> set[str]:
    assert all(kind is Q for kind, _ in destinations)
    return {name for _, name in destinations}


# --- Binding -----------------------------------------------------------------


def test_binding_arguments_do_not_depend_on_order() -> None:
    one = Binding.make("x", "q", "queue", "k", {"a": 1, "b": {"n": [1, 2]}})
    two = Binding.make("x", "q", Q, "k", {"b": {"n": [1, 2]}, "a": 1})
    assert one == two
    assert hash(one) == hash(two)
    assert one.argument_dict == {"a": 1, "b": {"n": [1, 2]}}
    assert one.target == (Q, "q")


def test_binding_keeps_bool_int_and_float_apart() -> None:
    as_bool = Binding.make("x", "q", Q, "", {"k": True})
    as_int = Binding.make("x", "q", Q, "", {"k": 1})
    as_float = Binding.make("x", "q", Q, "", {"k": 1.0})
    assert len({as_bool, as_int, as_float}) == 3
    assert as_bool.argument_dict["k"] is True


def test_no_arguments_and_empty_arguments_are_the_same_binding() -> None:
    assert Binding.make("x", "q", Q, "k", None) == Binding.make("x", "q", Q, "k", {})


# --- binding and unbinding ---------------------------------------------------


def test_bind_is_idempotent_and_unbind_reports_absence() -> None:
    x = Exchange("x", "direct")
    binding = queue_binding(x, "q", "k")
    assert x.bind(binding)
    assert not x.bind(Binding.make("x", "q", Q, "k", {}))
    assert x.bindings == {binding}
    assert x.unbind(binding)
    assert not x.unbind(binding)
    assert x.bindings == set()
    assert x.route("k", None) == set()


def test_bind_from_another_exchange_is_a_bug() -> None:
    x = Exchange("x", "direct")
    with pytest.raises(ValueError):
        x.bind(Binding.make("other", "q", Q, "k", None))


def test_unbind_destination_removes_all_its_bindings() -> None:
    x = Exchange("x", "topic")
    bound(x, "q", "a.*")
    bound(x, "q", "#")
    keep = bound(x, "r", "a.b")
    gone = x.unbind_destination((Q, "q"))
    assert len(gone) == 2
    assert x.bindings == {keep}
    assert x.route("a.b", None) == {(Q, "r")}


def test_unknown_type_is_refused_and_the_four_types_exist() -> None:
    assert set(EXCHANGE_TYPES) == {"direct", "fanout", "topic", "headers"}
    with pytest.raises(ValueError):
        Exchange("x", "x-bogus")


# --- direct --------------------------------------------------------------------


def test_direct_routes_on_the_exact_key() -> None:
    x = Exchange("x", "direct")
    bound(x, "q1", "k")
    bound(x, "q2", "k")
    bound(x, "q3", "K")
    bound(x, "q4", "")
    assert queues(x.route("k", None)) == {"q1", "q2"}
    assert queues(x.route("", None)) == {"q4"}
    assert x.route("k.", None) == set()


def test_direct_same_key_with_other_arguments_is_a_second_binding() -> None:
    x = Exchange("x", "direct")
    first = bound(x, "q", "k", {"v": 1})
    second = bound(x, "q", "k", {"v": 2})
    assert x.route("k", None) == {(Q, "q")}
    assert x.unbind(first)
    assert x.route("k", None) == {(Q, "q")}
    assert x.unbind(second)
    assert x.route("k", None) == set()


def test_exchange_destinations_come_back_as_exchanges() -> None:
    x = Exchange("x", "direct")
    assert x.bind(Binding.make("x", "y", E, "k", None))
    assert x.bind(Binding.make("x", "y", Q, "k", None))
    assert x.route("k", None) == {(E, "y"), (Q, "y")}


def test_route_result_belongs_to_the_caller() -> None:
    x = Exchange("x", "direct")
    bound(x, "q", "k")
    x.route("k", None).add((Q, "intruder"))
    assert x.route("k", None) == {(Q, "q")}


# --- fanout --------------------------------------------------------------------


def test_fanout_routes_to_every_binding_once() -> None:
    x = Exchange("x", "fanout")
    bound(x, "q1", "a")
    bound(x, "q1", "b")
    bound(x, "q2", "")
    assert queues(x.route("anything", {"h": 1})) == {"q1", "q2"}
    x.unbind(queue_binding(x, "q1", "a"))
    assert queues(x.route("", None)) == {"q1", "q2"}
    x.unbind(queue_binding(x, "q1", "b"))
    assert queues(x.route("", None)) == {"q2"}


# --- topic ---------------------------------------------------------------------


def test_topic_routes_by_pattern_and_dedupes() -> None:
    x = Exchange("x", "topic")
    bound(x, "q", "stock.*.nyse")
    bound(x, "q", "stock.#")
    bound(x, "all", "#")
    bound(x, "one", "*")
    assert queues(x.route("stock.ibm.nyse", None)) == {"q", "all"}
    assert queues(x.route("stock", None)) == {"q", "all", "one"}
    assert queues(x.route("", None)) == {"all"}


def test_topic_cache_follows_binding_changes() -> None:
    x = Exchange("x", "topic")
    assert x.route("a.b", None) == set()
    binding = bound(x, "q", "a.*")
    assert x.route("a.b", None) == {(Q, "q")}
    bound(x, "r", "#.b")
    assert queues(x.route("a.b", None)) == {"q", "r"}
    x.unbind(binding)
    assert queues(x.route("a.b", None)) == {"r"}


def test_topic_stays_correct_past_the_cache_size() -> None:
    x = Exchange("x", "topic")
    bound(x, "even", "*.0")
    for i in range(TOPIC_CACHE_SIZE + 10):
        want = {(Q, "even")} if i % 2 == 0 else set()
        assert x.route(f"k{i}.{i % 2}", None) == want


# --- headers -------------------------------------------------------------------


def headers_routes(args: dict[str, Any], headers: dict[str, Any] | None) -> bool:
    x = Exchange("h", "headers")
    bound(x, "q", "ignored", args)
    return x.route("any key", headers) == {(Q, "q")}


@pytest.mark.parametrize(
    ("args", "headers", "routes"),
    [
        # x-match all (the default): every argument present and equal.
        ({"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3}, True),
        ({"a": 1, "b": 2}, {"a": 1, "b": 3}, False),
        ({"x-match": "all", "a": 1, "b": 2}, {"a": 1}, False),
        # Nothing to compare: all matches everything, any matches nothing.
        ({}, None, True),
        ({"x-match": "all"}, {"z": 1}, True),
        ({"x-match": "any"}, {"z": 1}, False),
        # any: one equal argument suffices.
        ({"x-match": "any", "a": 1, "b": 2}, {"b": 2}, True),
        ({"x-match": "any", "a": 1, "b": 2}, {"a": 2, "b": 3}, False),
        ({"x-match": "any", "a": 1}, None, False),
        # Other x- arguments are ignored by all/any, compared by *-with-x.
        ({"x-match": "all", "a": 1, "x-foo": "bar"}, {"a": 1}, True),
        ({"x-match": "any", "x-foo": "bar"}, {"x-foo": "bar"}, False),
        ({"x-match": "all-with-x", "a": 1, "x-foo": "bar"}, {"a": 1}, False),
        ({"x-match": "all-with-x", "a": 1, "x-foo": "bar"}, {"a": 1, "x-foo": "bar"}, True),
        ({"x-match": "any-with-x", "x-foo": "bar"}, {"x-foo": "bar"}, True),
        ({"x-match": "any-with-x", "x-foo": "bar"}, {"x-foo": "baz"}, False),
        # A void argument asks only for presence, whatever the value.
        ({"k": None}, {"k": 2}, True),
        ({"k": None}, {"k": None}, True),
        ({"k": None}, {"j": 1}, False),
        ({"k": 1}, {"k": None}, False),
        # Values compare by value: a longstr equals the same bytes...
        ({"k": "1"}, {"k": b"1"}, True),
        ({"k": b"1"}, {"k": "1"}, True),
        ({"k": "1"}, {"k": 1}, False),
        ({"k": 1}, {"k": 1.0}, True),
        ({"k": 2**40}, {"k": 2**40}, True),
        # ...but a boolean is not a number, nor a decimal an integer.
        ({"k": True}, {"k": 1}, False),
        ({"k": 1}, {"k": True}, False),
        ({"k": True}, {"k": True}, True),
        ({"k": Decimal("1")}, {"k": 1}, False),
        ({"k": Decimal("1")}, {"k": Decimal("1")}, True),
        # Nested tables and arrays compare exactly, in order, types included.
        ({"k": {"p": 1, "q": "s"}}, {"k": {"p": 1, "q": "s"}}, True),
        ({"k": {"p": 1, "q": "s"}}, {"k": {"q": "s", "p": 1}}, False),
        ({"k": [1, "s"]}, {"k": [1, "s"]}, True),
        ({"k": [1, "s"]}, {"k": [1.0, "s"]}, False),
        ({"k": [1, "s"]}, {"k": [1, b"s"]}, False),
    ],
)
def test_headers_matching(
    args: dict[str, Any], headers: dict[str, Any] | None, routes: bool
) -> None:
    assert headers_routes(args, headers) is routes


def test_headers_dedupes_and_unbinds() -> None:
    x = Exchange("h", "headers")
    by_a = bound(x, "q", "", {"a": 1})
    bound(x, "q", "", {"x-match": "any", "b": 1})
    assert x.route("", {"a": 1, "b": 1}) == {(Q, "q")}
    x.unbind(by_a)
    assert x.route("", {"a": 1}) == set()
    assert x.route("", {"b": 1}) == {(Q, "q")}


@pytest.mark.parametrize(
    ("x_match", "text"),
    [
        (
            "bogus",
            'Invalid x-match field value <<"bogus">>; expected all, any, all-with-x, or any-with-x',
        ),
        (
            "ALL",
            'Invalid x-match field value <<"ALL">>; expected all, any, all-with-x, or any-with-x',
        ),
        (1, "Invalid x-match field type signedint (value 1); expected longstr"),
        (b"all", 'Invalid x-match field type binary (value <<"all">>); expected longstr'),
        (True, "Invalid x-match field type bool (value true); expected longstr"),
    ],
)
def test_invalid_x_match_is_refused_with_rabbitmq_text(x_match: object, text: str) -> None:
    # RabbitMQ's text comes from its vocabulary (vhost.bind asks it first); the core's
    # headers exchange refuses the binding on its own too.
    assert binding_problem("headers", {"x-match": x_match}) == text
    x = Exchange("h", "headers")
    with pytest.raises(PreconditionFailed):
        x.bind(queue_binding(x, "q", "", {"x-match": x_match}))
    assert x.bindings == set()


def test_other_types_accept_any_binding_arguments() -> None:
    assert binding_problem("direct", {"x-match": "bogus"}) is None
    x = Exchange("x", "direct")
    assert x.bind(queue_binding(x, "q", "k", {"x-match": "bogus"}))


# --- redeclare equivalence -------------------------------------------------------


def inequivalence(x: Exchange, **changes: Any) -> str | None:
    declared: dict[str, Any] = {
        "type": x.type,
        "durable": x.durable,
        "auto_delete": x.auto_delete,
        "internal": x.internal,
        "arguments": dict(x.arguments),
    }
    declared.update(changes)
    return exchange_inequivalence(x, "/", **declared)


PREFIX = "inequivalent arg '{}' for exchange 'x' in vhost '/': "


@pytest.mark.parametrize(
    ("changes", "field", "received", "current"),
    [
        ({"type": "fanout"}, "type", "fanout", "direct"),
        ({"durable": True}, "durable", "true", "false"),
        ({"auto_delete": True}, "auto_delete", "true", "false"),
        ({"internal": True}, "internal", "true", "false"),
        # Type is compared first, then durable, auto_delete, internal.
        ({"type": "fanout", "durable": True}, "type", "fanout", "direct"),
        ({"internal": True, "auto_delete": True}, "auto_delete", "true", "false"),
    ],
)
def test_flag_inequivalence_texts(
    changes: dict[str, Any], field: str, received: str, current: str
) -> None:
    x = Exchange("x", "direct")
    assert inequivalence(x, **changes) == (
        PREFIX.format(field) + f"received '{received}' but current is '{current}'"
    )


def test_durable_exchange_redeclared_transient() -> None:
    x = Exchange("x", "direct", durable=True)
    assert inequivalence(x, durable=False) == (
        PREFIX.format("durable") + "received 'false' but current is 'true'"
    )


@pytest.mark.parametrize(
    ("current", "received", "tail"),
    [
        (None, "ae", "received the value 'ae' of type 'longstr' but current is none"),
        ("ae", None, "received none but current is the value 'ae' of type 'longstr'"),
        ("", None, "received none but current is the value '' of type 'longstr'"),
        ("ae", "ae2", "received 'ae2' but current is 'ae'"),
        ("ae", 5, "received '5' but current is 'ae'"),
        ("é", "ü", "received 'ü' but current is 'é'"),
        ("ae", "ae", None),
        ("ae", b"ae", None),  # RabbitMQ compares before it validates the type
    ],
)
def test_alternate_exchange_inequivalence_texts(
    current: str | None, received: object, tail: str | None
) -> None:
    args = {} if current is None else {"alternate-exchange": current}
    x = Exchange("x", "direct", arguments=args)
    new = {} if received is None else {"alternate-exchange": received}
    want = None if tail is None else PREFIX.format("alternate-exchange") + tail
    assert inequivalence(x, arguments=new) == want


def test_only_the_alternate_exchange_argument_is_compared() -> None:
    x = Exchange("x", "topic", arguments={"alternate-exchange": "ae", "foo": 1})
    assert inequivalence(x, arguments={"alternate-exchange": "ae", "foo": 2}) is None
    assert inequivalence(x, arguments={"alternate-exchange": "ae"}) is None


def test_vhost_appears_in_the_text() -> None:
    x = Exchange("x", "direct")
    text = exchange_inequivalence(x, "prod", "topic", False, False, False, None)
    assert text == (
        "inequivalent arg 'type' for exchange 'x' in vhost 'prod': "
        "received 'topic' but current is 'direct'"
    )


# --- arguments -----------------------------------------------------------------


def test_alternate_exchange_property() -> None:
    assert Exchange("x", "direct").alternate_exchange is None
    declared = ExchangeOptions(alternate_exchange="ae")
    assert Exchange("x", "direct", options=declared).alternate_exchange == "ae"


def exchange_argument_error(name: str, arguments: dict[str, Any] | None) -> str | None:
    try:
        exchange_options(name, "/", arguments)
    except PreconditionFailed as refused:
        return refused.text
    return None


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(5, "signedint"), (b"ae", "binary"), (True, "bool"), (None, "void")],
)
def test_alternate_exchange_must_be_a_string(value: object, type_name: str) -> None:
    text = exchange_argument_error("x", {"alternate-exchange": value})
    assert text == (
        f"invalid type '{type_name}' for arg 'alternate-exchange' in exchange 'x' in vhost '/'"
    )


def test_valid_exchange_arguments_pass() -> None:
    assert exchange_argument_error("x", None) is None
    assert exchange_argument_error("x", {"alternate-exchange": "ae", "other": 1}) is None
