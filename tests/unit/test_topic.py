"""The topic trie against a naive matcher, and against what RabbitMQ 3.10 does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.core.topic import MQTT, TopicTrie, split_words


def words_of(key: str) -> list[str]:
    # RabbitMQ: the empty key has no words; otherwise every '.' splits.
    return key.split(".") if key else []


def naive_match(pattern: list[str], key: list[str]) -> bool:
    """Plain recursion over word lists: the definition, not an algorithm."""
    if not pattern:
        return not key
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return naive_match(rest, key) or (bool(key) and naive_match(pattern, key[1:]))
    if not key:
        return False
    return (head == "*" or head == key[0]) and naive_match(rest, key[1:])


def expected(patterns: list[str], key: str) -> set[int]:
    return {i for i, p in enumerate(patterns) if naive_match(words_of(p), words_of(key))}


PATTERN_WORD = st.sampled_from(["a", "b", "", "*", "#"])
KEY_WORD = st.sampled_from(["a", "b", "", "c", "#", "*"])
PATTERN = st.lists(PATTERN_WORD, max_size=6).map(".".join)
KEY = st.lists(KEY_WORD, max_size=8).map(".".join)


@settings(max_examples=300)
@given(patterns=st.lists(PATTERN, max_size=12), keys=st.lists(KEY, min_size=1, max_size=8))
def test_trie_agrees_with_naive_matcher(patterns: list[str], keys: list[str]) -> None:
    trie: TopicTrie[int] = TopicTrie()
    for i, pattern in enumerate(patterns):
        trie.add(pattern, i)
    for key in keys:
        assert trie.match(key) == expected(patterns, key)


@settings(max_examples=200)
@given(
    patterns=st.lists(PATTERN, min_size=1, max_size=12),
    keys=st.lists(KEY, min_size=1, max_size=6),
    data=st.data(),
)
def test_trie_agrees_after_random_removals(
    patterns: list[str], keys: list[str], data: st.DataObject
) -> None:
    trie: TopicTrie[int] = TopicTrie()
    for i, pattern in enumerate(patterns):
        trie.add(pattern, i)
    removed = data.draw(st.sets(st.sampled_from(range(len(patterns)))))
    for i in removed:
        assert trie.remove(patterns[i], i)
    kept = [p if i not in removed else None for i, p in enumerate(patterns)]
    for key in keys:
        want = {i for i in expected(patterns, key) if kept[i] is not None}
        assert trie.match(key) == want
    assert len(trie) == len(patterns) - len(removed)


@given(patterns=st.lists(PATTERN, min_size=1, max_size=10))
def test_removing_everything_prunes_to_the_root(patterns: list[str]) -> None:
    trie: TopicTrie[int] = TopicTrie()
    for i, pattern in enumerate(patterns):
        trie.add(pattern, i)
    for i, pattern in enumerate(patterns):
        assert trie.remove(pattern, i)
    assert trie.node_count() == 1
    assert len(trie) == 0


def test_remove_prunes_only_the_unshared_branch() -> None:
    trie: TopicTrie[str] = TopicTrie()
    trie.add("a.b.c", "q1")
    trie.add("a.x", "q2")
    assert trie.node_count() == 5  # root, a, b, c, x
    assert trie.remove("a.b.c", "q1")
    assert trie.node_count() == 3  # root, a, x
    assert trie.match("a.x") == {"q2"}


def test_same_pattern_and_value_twice_needs_two_removals() -> None:
    trie: TopicTrie[str] = TopicTrie()
    trie.add("a.*", "q")
    trie.add("a.*", "q")
    assert trie.remove("a.*", "q")
    assert trie.match("a.b") == {"q"}
    assert trie.remove("a.*", "q")
    assert trie.match("a.b") == set()


def test_removing_what_is_not_there_reports_false() -> None:
    trie: TopicTrie[str] = TopicTrie()
    trie.add("a.b", "q")
    assert not trie.remove("a.b", "other")
    assert not trie.remove("a.c", "q")
    assert not trie.remove("a", "q")
    assert trie.match("a.b") == {"q"}


def test_split_words_follows_rabbitmq() -> None:
    assert split_words("") == []
    assert split_words("a..b") == ["a", "", "b"]
    assert split_words("a.") == ["a", ""]
    assert split_words(".") == ["", ""]


# Observed on RabbitMQ 3.10 with pika: pattern -> keys (of KEYS) that matched.
KEYS = ["", "a", "b", ".", "..", "a.", ".a", "a.b", "a..b", "a.x.b", "a#", "a*", "#", "*"]
RABBITMQ = {
    "": [""],
    "#": KEYS,
    "*": ["a", "b", "a#", "a*", "#", "*"],
    "*.*": [".", "a.", ".a", "a.b"],
    "a.*": ["a.", "a.b"],
    "a.#": ["a", "a.", "a.b", "a..b", "a.x.b"],
    "#.a": ["a", ".a"],
    "a.*.b": ["a..b", "a.x.b"],
    "*.#": [k for k in KEYS if k != ""],
    "#.*": [k for k in KEYS if k != ""],
    ".": ["."],
    "a.": ["a."],
    "*..*": ["..", "a..b"],
    "a#": ["a#"],
    "a*": ["a*"],
    "#a": [],
    "#.#.#": KEYS,
    "a.#.*.b": ["a..b", "a.x.b"],
}


@pytest.mark.parametrize("pattern", sorted(RABBITMQ))
def test_edge_cases_match_rabbitmq(pattern: str) -> None:
    trie: TopicTrie[str] = TopicTrie()
    trie.add(pattern, "q")
    assert sorted(k for k in KEYS if trie.match(k)) == sorted(RABBITMQ[pattern])


def test_many_hashes_against_a_long_key_completes() -> None:
    trie: TopicTrie[str] = TopicTrie()
    trie.add(".".join(["#"] * 30) + ".z", "never")
    trie.add(".".join(["#"] * 30), "always")
    key = ".".join(["a"] * 400)
    assert trie.match(key) == {"always"}
    assert trie.match(key + ".z") == {"never", "always"}


# -- the same trie with MQTT's syntax: "/" separates, "+" and "#" are wildcards ------


def naive_mqtt(pattern: list[str], key: list[str]) -> bool:
    """MQTT's rules as the definition: AMQP's with other characters, and a first level
    starting with "$" matched by no wildcard there ([MQTT-4.7.2-1])."""
    if key and key[0].startswith("$") and pattern and pattern[0] in ("+", "#"):
        return False
    translated = ["*" if w == "+" else "#" if w == "#" else w.replace("*", "\x00") for w in pattern]
    return naive_match(translated, [w.replace("*", "\x00") for w in key])


# Topic names and filters are never empty in MQTT ([MQTT-4.7.3-1]).
MQTT_PATTERN = st.lists(st.sampled_from(["a", "b", "", "+", "#", "$SYS", "*"]), max_size=6)
MQTT_KEY = st.lists(st.sampled_from(["a", "b", "", "$SYS", "$x", "*", "."]), min_size=1, max_size=7)


@settings(max_examples=300)
@given(patterns=st.lists(MQTT_PATTERN.map("/".join).filter(bool), max_size=12),
       keys=st.lists(MQTT_KEY.map("/".join).filter(bool), min_size=1, max_size=8))  # fmt: skip
def test_mqtt_syntax_agrees_with_naive_matcher(patterns: list[str], keys: list[str]) -> None:
    trie: TopicTrie[int] = TopicTrie(MQTT)
    for i, pattern in enumerate(patterns):
        trie.add(pattern, i)
    for key in keys:
        want = {i for i, p in enumerate(patterns) if naive_mqtt(p.split("/"), key.split("/"))}
        assert trie.match(key) == want, key


# The examples of MQTT 3.1.1 §4.7.1 and §4.7.2 (and MQTT 5.0's same sections).
MQTT_EXAMPLES = [
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player1/tournament", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("#", "$SYS/broker/clients", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("a.b/#", "a.b/c", True),  # "." is an ordinary character in MQTT
    ("a/*", "a/b", False),  # and so is "*"
]


@pytest.mark.parametrize(("pattern", "topic", "matches"), MQTT_EXAMPLES)
def test_mqtt_spec_examples(pattern: str, topic: str, matches: bool) -> None:
    trie: TopicTrie[str] = TopicTrie(MQTT)
    trie.add(pattern, "x")
    assert trie.match(topic) == ({"x"} if matches else set())
