"""Topic names, topic filters, limits and shared subscriptions (MQTT 5.0 §4.7, §4.8.2)."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pigeon.protocols.mqtt.reasons import ProtocolViolation, ReasonCode
from pigeon.protocols.mqtt.topics import (
    SharedSubscription,
    TopicLimits,
    check_topic_filter,
    check_topic_name,
    filter_matches,
    matches_dollar_topics,
    parse_filter,
    parse_shared,
)


@pytest.mark.parametrize("name", ["a", "/", "a/b/c", "a//b", "/a", "a/", "$SYS/x", " ", "é/ü"])
def test_valid_topic_names(name: str) -> None:
    check_topic_name(name)


@pytest.mark.parametrize("name", ["", "a/+", "+", "#", "a/#", "a+b", "sport#"])
def test_invalid_topic_names(name: str) -> None:
    with pytest.raises(ProtocolViolation) as caught:
        check_topic_name(name)
    assert caught.value.reason == ReasonCode.TOPIC_NAME_INVALID


@pytest.mark.parametrize(
    "topic_filter", ["#", "+", "a/#", "a/+/b", "+/+", "/+", "+/", "a//#", "$SYS/#", "a/b"]
)
def test_valid_topic_filters(topic_filter: str) -> None:
    check_topic_filter(topic_filter)


@pytest.mark.parametrize(
    "topic_filter",
    [
        "",  # [MQTT-4.7.3-1]
        "a/#/b",  # [MQTT-4.7.1-1] '#' is last
        "a#",
        "#a",
        "a/b#",
        "a+",  # [MQTT-4.7.1-2] '+' fills a level
        "+a/b",
        "a/+b",
        "##",
    ],
)
def test_invalid_topic_filters(topic_filter: str) -> None:
    with pytest.raises(ProtocolViolation) as caught:
        check_topic_filter(topic_filter)
    assert caught.value.reason == ReasonCode.TOPIC_FILTER_INVALID


def test_limits_on_length_in_bytes_and_on_levels() -> None:
    limits = TopicLimits(max_length=8, max_levels=3)
    check_topic_name("a/b/c", limits)
    check_topic_name("éééé", limits)  # 8 bytes of UTF-8
    with pytest.raises(ProtocolViolation, match="longer than 8 bytes"):
        check_topic_name("ééééé", limits)
    with pytest.raises(ProtocolViolation, match="more than 3 levels"):
        check_topic_name("a/b/c/d", limits)
    with pytest.raises(ProtocolViolation, match="more than 3 levels"):
        check_topic_filter("+/+/+/#", limits)


@pytest.mark.parametrize(
    ("topic_filter", "shared"),
    [
        ("$share/g/a/b", SharedSubscription("g", "a/b")),
        ("$share/group-1/#", SharedSubscription("group-1", "#")),
        ("$share/g//", SharedSubscription("g", "/")),
        ("a/b", None),
        ("$SYS/share/x", None),
        ("$sharex/g/a", None),
    ],
)
def test_shared_subscriptions_are_split(
    topic_filter: str, shared: SharedSubscription | None
) -> None:
    assert parse_shared(topic_filter) == shared


@pytest.mark.parametrize(
    "topic_filter",
    [
        "$share/",  # [MQTT-4.8.2-1] at least one character of share name
        "$share//a",
        "$share/g",  # [MQTT-4.8.2-2] '/' and a filter follow the name
        "$share/g/",
        "$share/+/a",  # no wildcard in the name
        "$share/g#/a",
    ],
)
def test_malformed_shared_subscriptions(topic_filter: str) -> None:
    with pytest.raises(ProtocolViolation) as caught:
        parse_filter(topic_filter)
    assert caught.value.reason == ReasonCode.TOPIC_FILTER_INVALID


def test_parse_filter_checks_the_filter_inside_a_share() -> None:
    assert parse_filter("$share/g/a/+") == ("a/+", SharedSubscription("g", "a/+"))
    assert parse_filter("a/#") == ("a/#", None)
    with pytest.raises(ProtocolViolation):
        parse_filter("$share/g/a#")
    # In 3.1.1 "$share" means nothing: the filter is taken as written.
    assert parse_filter("$share/g", shared_allowed=False) == ("$share/g", None)


@pytest.mark.parametrize(
    ("topic_filter", "dollar"), [("#", False), ("+/x", False), ("+", False), ("$SYS/#", True)]
)
def test_filters_starting_with_a_wildcard_do_not_match_dollar_topics(
    topic_filter: str, dollar: bool
) -> None:
    # [MQTT-4.7.2-1]
    assert matches_dollar_topics(topic_filter) is dollar
    assert filter_matches(topic_filter, "$SYS/x") is dollar


@pytest.mark.parametrize(
    ("topic_filter", "name", "matches"),
    [
        ("sport/tennis/player1/#", "sport/tennis/player1", True),  # '#' takes the parent
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/#", "sport", True),
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("#", "/finance", True),
        ("$SYS/#", "$SYS/broker", True),
    ],
)
def test_examples_of_the_standard(topic_filter: str, name: str, matches: bool) -> None:
    # 5.0 §4.7.1.2, §4.7.1.3
    assert filter_matches(topic_filter, name) is matches


_levels = st.lists(st.sampled_from(["a", "b", ""]), min_size=1, max_size=4)


def _regex(topic_filter: str) -> re.Pattern[str]:
    levels = topic_filter.split("/")
    parts = [("[^/]*" if level == "+" else re.escape(level)) for level in levels]
    if levels[-1] == "#":
        if len(levels) == 1:
            return re.compile(".*")
        return re.compile("/".join(parts[:-1]) + "(/.*)?")
    return re.compile("/".join(parts))


@given(_levels, _levels, st.lists(st.booleans(), min_size=4, max_size=4), st.booleans())
def test_matching_agrees_with_a_regular_expression(
    filter_levels: list[str], name_levels: list[str], plus: list[bool], hash_last: bool
) -> None:
    levels = ["+" if wild else level for level, wild in zip(filter_levels, plus, strict=False)]
    if hash_last:
        levels.append("#")
    topic_filter = "/".join(levels)
    name = "/".join(name_levels)
    assume(topic_filter and name)
    check_topic_filter(topic_filter)
    assert filter_matches(topic_filter, name) is bool(_regex(topic_filter).fullmatch(name))
