"""Retained messages in the core: filter matching (against a naive matcher) and the rules
of :mod:`pigeon.core.retained` (clearing, shared subscriptions, ``$`` topics, expiry,
the per-vhost limit), on a manual clock and the in-memory store."""

from __future__ import annotations

import pytest
from glue_fakes import ManualClock
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.core.commands import ForgetRetained, RetainMessage
from pigeon.core.message import Message, Properties
from pigeon.core.retained import RetainedMessages
from pigeon.core.topic_names import TopicNames
from pigeon.errors import ResourceLimit
from pigeon.storage.memory import MemoryStore


def naive_match(topic_filter: str, name: str) -> bool:
    """MQTT 5.0 §4.7 read literally, level by level: the definition, not an algorithm."""
    levels, words = topic_filter.split("/"), name.split("/")
    if levels[0] in ("+", "#") and words[0].startswith("$"):
        return False  # [MQTT-4.7.2-1]
    for i, level in enumerate(levels):
        if level == "#":
            return True  # this level and all below, the parent level included
        if i >= len(words) or (level != "+" and level != words[i]):
            return False
    return len(words) == len(levels)


def test_naive_matcher_reads_the_spec_examples() -> None:
    # MQTT 5.0 §4.7.1.2 and §4.7.1.3 (the non-normative examples).
    assert naive_match("sport/tennis/player1/#", "sport/tennis/player1")
    assert naive_match("sport/tennis/player1/#", "sport/tennis/player1/ranking")
    assert naive_match("sport/#", "sport")
    assert naive_match("sport/tennis/+", "sport/tennis/player1")
    assert not naive_match("sport/tennis/+", "sport/tennis/player1/ranking")
    assert not naive_match("sport/+", "sport")
    assert naive_match("sport/+", "sport/")
    assert naive_match("+/+", "/finance") and naive_match("/+", "/finance")
    assert not naive_match("+", "/finance")
    assert not naive_match("#", "$SYS/x") and not naive_match(
        "+/monitor/Clients", "$SYS/monitor/Clients"
    )
    assert naive_match("$SYS/#", "$SYS/x") and naive_match("$SYS/monitor/+", "$SYS/monitor/Clients")


NAME_LEVEL = st.sampled_from(["a", "b", "", "$x", "c"])
FILTER_LEVEL = st.sampled_from(["a", "b", "", "$x", "+", "+", "#"])
NAME = st.lists(NAME_LEVEL, min_size=1, max_size=5).map("/".join)
FILTER = st.lists(FILTER_LEVEL, min_size=1, max_size=5).map("/".join)


@settings(max_examples=400)
@given(names=st.sets(NAME, max_size=25), filters=st.lists(FILTER, min_size=1, max_size=6))
def test_the_trie_matches_as_the_naive_matcher(names: set[str], filters: list[str]) -> None:
    trie = TopicNames()
    for name in names:
        assert trie.add(name)
    for topic_filter in filters:
        got = list(trie.match(topic_filter))
        assert len(got) == len(set(got)), "each name once"
        want = {n for n in names if naive_match(topic_filter, n)}
        if topic_filter.split("/")[:-1].count("#"):  # '#' not last: invalid, the protocol's
            continue
        assert set(got) == want, topic_filter


@settings(max_examples=200)
@given(names=st.lists(NAME, max_size=20), removed=st.lists(NAME, max_size=20))
def test_removing_names_leaves_the_others_matchable(names: list[str], removed: list[str]) -> None:
    trie = TopicNames()
    for name in names:
        trie.add(name)
    for name in removed:
        assert trie.remove(name) == (name in names)
        names = [n for n in names if n != name]
    assert len(trie) == len(set(names))
    assert set(trie.match("#")) | set(trie.match("$x/#")) == set(names)


# -- the rules of the store of one vhost ------------------------------------------------


def msg(body: bytes = b"on", ttl: int | None = None) -> Message:
    return Message("amq.topic", "k", Properties(ttl=ttl), body)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def retained_of(clock: ManualClock, store: MemoryStore, **options: object) -> RetainedMessages:
    wall = [1_800_000_000.0]

    def wall_clock() -> float:  # moves with the manual clock
        return wall[0] + clock.now

    return RetainedMessages("/", clock, store, wall_clock=wall_clock, **options)  # type: ignore[arg-type]


def topics(found: list[tuple[str, Message]]) -> set[str]:
    return {topic for topic, _ in found}


def test_the_last_message_per_topic_is_kept_and_stored(
    clock: ManualClock, store: MemoryStore
) -> None:
    retained = retained_of(clock, store)
    assert retained.retain("home/lamp", msg(b"off"))
    assert retained.retain("home/lamp", msg(b"on"))
    assert retained.retain("home/door", msg(b"shut"))
    assert len(retained) == 2
    [(topic, message)] = retained.match("home/lamp")
    assert (topic, message.body) == ("home/lamp", b"on")
    assert topics(retained.match("home/+")) == {"home/lamp", "home/door"}
    stored = store.load().retained
    assert sorted((c.topic, c.message.body, c.expires) for c in stored) == [
        ("home/door", b"shut", None),
        ("home/lamp", b"on", None),
    ]


def test_an_empty_body_clears_the_topic(clock: ManualClock, store: MemoryStore) -> None:
    # [MQTT-3.3.1-6], [MQTT-3.3.1-7]: the core decides, the caller passes the message.
    retained = retained_of(clock, store)
    retained.retain("a/b", msg())
    assert not retained.retain("a/b", msg(b""))
    assert retained.match("a/b") == [] and retained.match("#") == []
    assert len(retained) == 0 and store.load().retained == []
    assert not retained.retain("never/set", msg(b""))  # nothing to clear: nothing stored
    assert retained.forget("a/b") is False


def test_shared_subscriptions_get_no_retained_messages(
    clock: ManualClock, store: MemoryStore
) -> None:
    retained = retained_of(clock, store)
    retained.retain("a/b", msg())
    assert retained.match("$share/group/a/b") == []
    assert retained.match("$share/group/#") == []
    assert topics(retained.match("a/b")) == {"a/b"}


def test_dollar_topics_need_a_filter_that_names_them(
    clock: ManualClock, store: MemoryStore
) -> None:
    retained = retained_of(clock, store)
    retained.retain("$SYS/uptime", msg())
    retained.retain("sys/uptime", msg())
    assert topics(retained.match("#")) == {"sys/uptime"}
    assert topics(retained.match("+/uptime")) == {"sys/uptime"}
    assert topics(retained.match("$SYS/#")) == {"$SYS/uptime"}
    assert topics(retained.match("$SYS/uptime")) == {"$SYS/uptime"}


def test_an_expired_message_is_not_returned_and_is_dropped(
    clock: ManualClock, store: MemoryStore
) -> None:
    retained = retained_of(clock, store)
    retained.retain("short", msg(ttl=2_000))
    retained.retain("long", msg(ttl=60_000))
    retained.retain("forever", msg())
    [command] = [c for c in store.load().retained if c.topic == "short"]
    assert command.expires == pytest.approx(1_800_000_000.0 + clock.now + 2)
    clock.advance(1.5)
    assert topics(retained.match("#")) == {"short", "long", "forever"}
    clock.advance(1)
    assert retained.match("short") == []
    assert topics(retained.match("#")) == {"long", "forever"}
    assert len(retained) == 2
    assert {c.topic for c in store.load().retained} == {"long", "forever"}
    clock.advance(60)
    assert topics(retained.match("+")) == {"forever"}
    assert retained.get("long") is None


def test_an_expiry_set_by_routing_is_kept(clock: ManualClock, store: MemoryStore) -> None:
    retained = retained_of(clock, store)
    message = msg(ttl=10_000)
    message.expires_at = clock.now + 3  # routing set it when the publish came in
    retained.retain("t", message)
    clock.advance(3)
    assert retained.match("t") == []


def test_a_restored_message_keeps_the_time_it_had_left(
    clock: ManualClock, store: MemoryStore
) -> None:
    retained = retained_of(clock, store)
    retained.retain("t", msg(ttl=10_000))
    [command] = store.load().retained
    clock.advance(4)  # the broker was down for 4 seconds
    again = retained_of(clock, MemoryStore())
    again.restore(command.topic, command.message, command.expires)
    expires_at = again.get("t").expires_at  # type: ignore[union-attr]
    assert expires_at == pytest.approx(clock.now + 6)
    clock.advance(6)
    assert again.match("#") == []


def test_the_limit_refuses_new_topics_only(clock: ManualClock, store: MemoryStore) -> None:
    retained = retained_of(clock, store, limit=2)
    retained.retain("a", msg())
    retained.retain("b", msg(ttl=1_000))
    with pytest.raises(ResourceLimit, match="retained message limit of 2 reached in vhost '/'"):
        retained.retain("c", msg())
    assert topics(retained.match("#")) == {"a", "b"}
    assert retained.retain("a", msg(b"replaced"))  # replacing is always accepted
    clock.advance(2)  # "b" expired: it makes room
    assert retained.retain("c", msg())
    assert topics(retained.match("#")) == {"a", "c"}
    assert not retained.retain("a", msg(b""))  # clearing too
    assert retained.retain("d", msg())


def test_replayed_changes_are_not_written_back(clock: ManualClock, store: MemoryStore) -> None:
    retained = retained_of(clock, store)
    retained.restore("a/b", msg(), None)
    assert topics(retained.match("a/#")) == {"a/b"}
    assert retained.restore_forget("a/b")
    assert store.written == 0
    # (commands are plain data a replicated store can ship as they are)
    assert RetainMessage("/", "t", msg()).expires is None
    assert ForgetRetained("/", "t") == ForgetRetained("/", "t")
