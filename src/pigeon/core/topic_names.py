"""A trie of MQTT topic names, searched with a topic filter (the reverse of :mod:`.topic`).

:class:`pigeon.core.topic.TopicTrie` holds *patterns* and matches one name against all
of them (routing). Retained messages need the other direction: many stored topic
*names* and one *filter* (a new subscription) that picks some of them. Walking the
filter level by level through a trie of the names visits only the branches the filter
can reach: ``a/+/c`` looks at the children of ``a``, not at every stored name.

MQTT's rules (3.1.1 and 5.0 §4.7):

- names and filters split into levels on ``/``; an empty level is a level
  (``a//b`` has three, ``/a`` starts with an empty one);
- ``+`` in a filter matches exactly one level, ``#`` (last level only) matches the
  parent level and any number of levels below it ([MQTT-4.7.1-2]: ``a/#`` matches
  ``a``);
- a filter that starts with a wildcard does not match names whose first level
  starts with ``$`` ([MQTT-4.7.2-1]).

Checking that a filter or a name is well formed (no ``#`` but at the end, no
wildcard inside a level, not empty) is the protocol's, at entry; here a ``+`` or
``#`` inside a level is an ordinary character.
"""

from __future__ import annotations

from collections.abc import Iterator

SEPARATOR = "/"
ONE_LEVEL = "+"
ANY_LEVELS = "#"


class _Node:
    __slots__ = ("children", "name")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        # The topic name that ends here, if one is stored.
        self.name: str | None = None


def has_wildcard(topic_filter: str) -> bool:
    """Whether any level of the filter is ``+`` or ``#``."""
    if ONE_LEVEL not in topic_filter and ANY_LEVELS not in topic_filter:
        return False
    return any(level in (ONE_LEVEL, ANY_LEVELS) for level in topic_filter.split(SEPARATOR))


def hidden(level: str) -> bool:
    """A first level that wildcards do not match ([MQTT-4.7.2-1])."""
    return level.startswith("$")


class TopicNames:
    """A set of topic names; :meth:`match` gives those a filter matches."""

    def __init__(self) -> None:
        self._root = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, name: str) -> bool:
        """Add a name; False if it was there already."""
        node = self._root
        for level in name.split(SEPARATOR):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        if node.name is not None:
            return False
        node.name = name
        self._count += 1
        return True

    def remove(self, name: str) -> bool:
        """Remove a name, and the nodes it leaves empty; False if it was not there."""
        path: list[tuple[_Node, str]] = []
        node = self._root
        for level in name.split(SEPARATOR):
            child = node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        if node.name is None:
            return False
        node.name = None
        self._count -= 1
        for parent, level in reversed(path):
            if node.name is not None or node.children:
                break
            del parent.children[level]
            node = parent
        return True

    def match(self, topic_filter: str) -> Iterator[str]:
        """Every stored name the filter matches, each once."""
        levels = topic_filter.split(SEPARATOR)
        end = len(levels)
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        while stack:
            node, depth = stack.pop()
            if depth == end:
                if node.name is not None:
                    yield node.name
                continue
            level = levels[depth]
            if level == ANY_LEVELS:
                # The parent level itself (not the root: no name has zero levels).
                if node.name is not None:
                    yield node.name
                yield from _below(node, skip_hidden=depth == 0)
            elif level == ONE_LEVEL:
                for word, child in node.children.items():
                    if not (depth == 0 and hidden(word)):
                        stack.append((child, depth + 1))
            else:
                exact = node.children.get(level)
                if exact is not None:
                    stack.append((exact, depth + 1))


def _below(node: _Node, *, skip_hidden: bool) -> Iterator[str]:
    """Every name stored under ``node`` (not at it)."""
    stack = [child for word, child in node.children.items() if not (skip_hidden and hidden(word))]
    while stack:
        current = stack.pop()
        if current.name is not None:
            yield current.name
        stack.extend(current.children.values())
