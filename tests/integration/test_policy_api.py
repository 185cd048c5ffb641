"""The management API's policy, parameter and limit endpoints: shapes, codes and texts.

Written against RabbitMQ 3.10's answers and run against it too
(``PIGEON_TEST_AMQP_URL``), each test in a vhost of its own.
"""

from __future__ import annotations

import pytest
from management import Target

pytestmark = pytest.mark.rabbitmq

TTL = {
    "pattern": "^a",
    "definition": {"message-ttl": 1000, "dead-letter-exchange": "dlx"},
    "priority": 1,
    "apply-to": "queues",
}


def test_policy_lifecycle(target: Target) -> None:
    path = f"/policies/{target.v}/p1"
    assert target.call("PUT", path, TTL) == (201, None)
    assert target.call("PUT", path, TTL) == (204, None)
    shown = {
        "vhost": target.vhost,
        "name": "p1",
        "pattern": "^a",
        "apply-to": "queues",
        "definition": {"dead-letter-exchange": "dlx", "message-ttl": 1000},
        "priority": 1,
    }
    assert target.call("GET", path) == (200, shown)
    target.put(f"/policies/{target.v}/p0", {"pattern": ".*", "definition": {"max-length": 1}})
    status, listed = target.call("GET", f"/policies/{target.v}")
    assert status == 200 and [p["name"] for p in listed] == ["p0", "p1"]
    assert listed[0] == {
        "vhost": target.vhost,
        "name": "p0",
        "pattern": ".*",
        "apply-to": "all",
        "definition": {"max-length": 1},
        "priority": 0,
    }
    status, everywhere = target.call("GET", "/policies")
    assert status == 200 and shown in everywhere
    assert target.call("DELETE", path) == (204, None)
    assert target.call("GET", path)[0] == 404
    assert target.call("DELETE", path)[0] == 404


def _reason(target: Target, path: str, body: object) -> str:
    status, answer = target.call("PUT", path, body)
    assert status == 400, answer
    assert answer["error"] == "bad_request"
    return str(answer["reason"])


ESCAPED = '&lt;&lt;"{}"&gt;&gt;'


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        ({"message-ttl": -1}, "-1 is not a valid message TTL"),
        ({"message-ttl": 1.5}, "1.5 is not a valid message TTL"),
        ({"expires": 0}, "0 is not a valid queue expiry"),
        ({"max-length": -1}, "-1 is not a valid maximum length"),
        (
            {"max-length-bytes": "a"},
            ESCAPED.format("a") + " is not a valid maximum length in bytes",
        ),
        ({"overflow": "x"}, ESCAPED.format("x") + " is not a valid overflow value"),
        ({"queue-mode": "x"}, ESCAPED.format("x") + " is not a valid queue-mode value"),
        ({"queue-version": 3}, "3 is not a valid queue-version value"),
        ({"dead-letter-exchange": 1}, "1 is not a valid dead letter exchange name"),
        ({"dead-letter-routing-key": 1}, "1 is not a valid dead letter routing key"),
        ({"alternate-exchange": 1}, "1 is not a valid alternate exchange name"),
        ({"delivery-limit": -1}, "-1 is not a valid delivery limit"),
        ({"foo": 1}, "[{" + ESCAPED.format("foo") + ",1}] are not recognised policy settings"),
        ({}, "no policy provided"),
    ],
)
def test_policy_definition_errors(target: Target, definition: object, problem: str) -> None:
    reason = _reason(
        target, f"/policies/{target.v}/bad", {"pattern": "^a", "definition": definition}
    )
    assert reason == f"Validation failed\n\n{problem}\n"


def test_policy_field_errors(target: Target) -> None:
    path = f"/policies/{target.v}/bad"
    assert _reason(target, path, {"definition": {"max-length": 1}}) == "[{key_missing,pattern}]"
    assert _reason(
        target, path, {"pattern": "^a", "definition": {"max-length": 1}, "apply-to": "bogus"}
    ) == (
        "Validation failed\n\napply-to 'bogus' unrecognised; should be 'queues', 'exchanges' "
        "or 'all'\n"
    )
    assert _reason(
        target, path, {"pattern": "^a", "definition": {"max-length": 1}, "priority": "x"}
    ) == (f"Validation failed\n\npriority should be a number, actually was {ESCAPED.format('x')}\n")
    assert _reason(target, path, {"pattern": "(", "definition": {"max-length": 1}}).startswith(
        "Validation failed\n\npattern should be regular expression but is invalid: "
    )
    assert target.call("PUT", "/policies/no-such-vhost-here/p", TTL) == (
        404,
        {"error": "not_found", "reason": "vhost_not_found"},
    )
    assert target.call("GET", f"/policies/{target.v}/never")[0] == 404


def test_operator_policies(target: Target) -> None:
    path = f"/operator-policies/{target.v}/o1"
    body = {"pattern": "^a", "definition": {"message-ttl": 500, "max-length": 3}}
    assert target.call("PUT", path, body) == (201, None)
    status, listed = target.call("GET", f"/operator-policies/{target.v}")
    assert status == 200 and listed == [
        {
            "vhost": target.vhost,
            "name": "o1",
            "pattern": "^a",
            "apply-to": "all",
            "definition": {"max-length": 3, "message-ttl": 500},
            "priority": 0,
        }
    ]
    # Only limits may be set by an operator; the text is not HTML-escaped here.
    status, answer = target.call(
        "PUT", path, {"pattern": "^a", "definition": {"dead-letter-exchange": "x"}}
    )
    assert status == 400 and answer["reason"] == (
        'Validation failed\n\n[{<<"dead-letter-exchange">>,<<"x">>}] are not recognised '
        "policy settings\n"
    )
    assert target.call("DELETE", path) == (204, None)


def test_parameters(target: Target) -> None:
    target.put(f"/policies/{target.v}/p1", TTL)
    target.put(
        f"/operator-policies/{target.v}/o1", {"pattern": "^a", "definition": {"max-length": 3}}
    )
    target.put(f"/vhost-limits/{target.v}/max-queues", {"value": 7})
    value = {
        "pattern": "^a",
        "definition": {"dead-letter-exchange": "dlx", "message-ttl": 1000},
        "priority": 1,
        "apply-to": "queues",
    }
    status, listed = target.call("GET", f"/parameters/policy/{target.v}")
    assert status == 200 and listed == [
        {"value": value, "vhost": target.vhost, "component": "policy", "name": "p1"}
    ]
    assert target.call("GET", f"/parameters/policy/{target.v}/p1") == (
        200,
        {"value": value, "vhost": target.vhost, "component": "policy", "name": "p1"},
    )
    status, everything = target.call("GET", "/parameters")
    assert status == 200
    ours = sorted((p["component"], p["name"]) for p in everything if p["vhost"] == target.vhost)
    assert ours == [("operator_policy", "o1"), ("vhost-limits", "limits")]
    assert {
        "value": {"max-queues": 7},
        "vhost": target.vhost,
        "component": "vhost-limits",
        "name": "limits",
    } in everything
    assert _reason(target, f"/parameters/bogus/{target.v}/x", {"value": {"a": 1}}) == (
        "Validation failed\n\ncomponent bogus not found\n"
    )
    # Policies have their own endpoint; operator policies may be set as parameters.
    assert _reason(target, f"/parameters/policy/{target.v}/p2", {"value": value}) == (
        "policies may not be set using this method"
    )
    assert _reason(
        target,
        f"/parameters/operator_policy/{target.v}/o2",
        {"value": {"pattern": "^b", "definition": {"max-length": 2}}},
    ) == ('Validation failed\n\nKey "priority" not found in o2\n')
    assert (
        target.call(
            "PUT",
            f"/parameters/operator_policy/{target.v}/o2",
            {
                "value": {
                    "pattern": "^b",
                    "definition": {"max-length": 2},
                    "priority": 0,
                    "apply-to": "all",
                }
            },
        )[0]
        == 201
    )
    status, shown = target.call("GET", f"/operator-policies/{target.v}")
    assert status == 200 and [p["name"] for p in shown] == ["o1", "o2"]
    assert target.call("DELETE", f"/parameters/operator_policy/{target.v}/o2") == (204, None)
    assert target.call("GET", f"/operator-policies/{target.v}/o2")[0] == 404


def test_global_parameters(target: Target) -> None:
    name = f"{target.vhost}-g"
    assert target.call("PUT", f"/global-parameters/{name}", {"value": {"a": 1}}) == (201, None)
    assert target.call("PUT", f"/global-parameters/{name}", {"value": {"a": 2}}) == (204, None)
    assert target.call("GET", f"/global-parameters/{name}") == (
        200,
        {"value": {"a": 2}, "name": name},
    )
    status, listed = target.call("GET", "/global-parameters")
    assert status == 200 and {"name": name, "value": {"a": 2}} in listed
    assert _reason(target, f"/global-parameters/{name}", {}) == "[{key_missing,value}]"
    assert target.call("DELETE", f"/global-parameters/{name}") == (204, None)
    assert target.call("DELETE", f"/global-parameters/{name}")[0] == 404


def test_vhost_limits(target: Target) -> None:
    limits = f"/vhost-limits/{target.v}"
    assert target.call("GET", limits) == (200, [])
    assert target.call("PUT", f"{limits}/max-queues", {"value": 2}) == (204, None)
    assert target.call("PUT", f"{limits}/max-connections", {"value": -1}) == (204, None)
    expected = [{"vhost": target.vhost, "value": {"max-connections": -1, "max-queues": 2}}]
    assert target.call("GET", limits) == (200, expected)
    assert expected[0] in target.call("GET", "/vhost-limits")[1]
    assert _reason(target, f"{limits}/bogus", {"value": 1}) == (
        'Validation failed\n\nUnrecognised terms [{<<"bogus">>,1}] in limits\n'
    )
    assert _reason(target, f"{limits}/max-queues", {"value": "a"}) == (
        'Validation failed\n\nmax-queues should be a number, actually was <<"a">>\n'
    )
    assert _reason(target, f"{limits}/max-queues", {}) == "[{key_missing,value}]"
    assert target.call("DELETE", f"{limits}/max-connections") == (204, None)
    assert target.call("DELETE", f"{limits}/max-connections") == (204, None)
    assert target.call("GET", limits) == (
        200,
        [{"vhost": target.vhost, "value": {"max-queues": 2}}],
    )
    assert target.call("PUT", "/vhost-limits/no-such-vhost-here/max-queues", {"value": 1}) == (
        404,
        {"error": "not_found", "reason": "vhost_not_found"},
    )


def test_user_limits(target: Target) -> None:
    user = f"{target.vhost}-u"
    target.put(f"/users/{user}", {"password": "pw", "tags": ""})
    try:
        assert target.call("PUT", f"/user-limits/{user}/max-channels", {"value": 2}) == (204, None)
        expected = [{"user": user, "value": {"max-channels": 2}}]
        assert target.call("GET", f"/user-limits/{user}") == (200, expected)
        assert expected[0] in target.call("GET", "/user-limits")[1]
        assert target.call("GET", f"/users/{user}")[1]["limits"] == {"max-channels": 2}
        assert _reason(target, f"/user-limits/{user}/bogus", {"value": 1}) == (
            'Unrecognised terms [{<<"bogus">>,1}] in user-limits'
        )
        assert target.call("PUT", "/user-limits/no-such-user-here/max-channels", {"value": 1}) == (
            400,
            {"error": "bad_request", "reason": ["no_such_user", "no-such-user-here"]},
        )
        assert target.call("DELETE", f"/user-limits/{user}/max-channels") == (204, None)
        assert target.call("GET", f"/user-limits/{user}") == (200, [])
        assert target.call("GET", "/user-limits/no-such-user-here")[0] == 404
    finally:
        target.call("DELETE", f"/users/{user}")


@pytest.mark.parametrize(
    ("tag", "allowed"),
    [
        ("monitoring", {"list", "limits"}),
        ("management", {"list", "vhost list", "limits"}),
        (
            "policymaker",
            {"list", "vhost list", "one", "put", "delete", "parameters", "globals", "limits"},
        ),
    ],
)
def test_who_may_read_and_change_policies(target: Target, tag: str, allowed: set[str]) -> None:
    user = f"{target.vhost}-{tag}"
    target.put(f"/users/{user}", {"password": "pw", "tags": tag})
    if tag != "monitoring":
        target.put(
            f"/permissions/{target.v}/{user}", {"configure": ".*", "write": ".*", "read": ".*"}
        )
    target.put(f"/policies/{target.v}/p1", TTL)
    as_user = Target(target.base, target.amqp, target.vhost, user, "pw")
    try:
        checks = {
            "list": ("GET", "/policies", None),
            "vhost list": ("GET", f"/policies/{target.v}", None),
            "one": ("GET", f"/policies/{target.v}/p1", None),
            "put": (
                "PUT",
                f"/policies/{target.v}/px",
                {"pattern": "^zz", "definition": {"max-length": 1}},
            ),
            "delete": ("DELETE", f"/policies/{target.v}/px", None),
            "parameters": ("GET", f"/parameters/policy/{target.v}", None),
            "globals": ("GET", "/global-parameters", None),
            "limits": ("GET", "/vhost-limits", None),
            "operator put": (
                "PUT",
                f"/operator-policies/{target.v}/ox",
                {"pattern": "^zz", "definition": {"max-length": 1}},
            ),
            "limit put": ("PUT", f"/vhost-limits/{target.v}/max-queues", {"value": 5}),
        }
        for what, (method, path, body) in checks.items():
            status, answer = as_user.call(method, path, body)
            assert (status < 300) == (what in allowed), (what, status, answer)
            if status == 401:
                assert answer["error"] == "not_authorised"
        ours = [p for p in as_user.call("GET", "/policies")[1] if p["vhost"] == target.vhost]
        assert [p["name"] for p in ours] == ([] if tag == "monitoring" else ["p1"])
    finally:
        target.call("DELETE", f"/users/{user}")


def test_vhost_definitions_carry_policies_and_parameters(target: Target) -> None:
    target.put(f"/policies/{target.v}/p1", TTL)
    target.put(f"/vhost-limits/{target.v}/max-queues", {"value": 7})
    status, exported = target.call("GET", f"/definitions/{target.v}")
    assert status == 200
    assert exported["policies"] == [
        {
            "vhost": target.vhost,
            "name": "p1",
            "pattern": "^a",
            "apply-to": "queues",
            "definition": {"dead-letter-exchange": "dlx", "message-ttl": 1000},
            "priority": 1,
        }
    ]
    assert exported["parameters"] == [
        {
            "value": {"max-queues": 7},
            "vhost": target.vhost,
            "component": "vhost-limits",
            "name": "limits",
        }
    ]
