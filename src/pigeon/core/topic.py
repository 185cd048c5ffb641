"""A trie of topic binding patterns, matched against routing keys.

Keys and patterns are split into words on ``.``. In a pattern ``*`` stands for
exactly one word and ``#`` for zero or more words (amqp0-9-1 §3.1.3.3, with
RabbitMQ's reading of the edge cases):

- the empty key has no words at all, so pattern ``#`` and pattern ``""`` match
  it but ``*`` does not;
- otherwise every ``.`` separates words, so ``"a..b"`` is three words, the
  middle one empty, and ``"a."`` is ``"a"`` followed by an empty word;
- ``*`` and ``#`` are wildcards only as whole words: ``"a*"`` is a plain word.

Matching walks the trie word by word. A ``#`` node may absorb any number of
words, which on its own would branch exponentially for patterns such as
``#.#.#.#``; each (node, words consumed) state is therefore visited at most
once per match, bounding the work by nodes x words. No regular expression is
ever built from client strings.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)

ONE_WORD = "*"
ANY_WORDS = "#"


def split_words(key: str) -> list[str]:
    """The words of a routing key or pattern; the empty key has none."""
    return key.split(".") if key else []


class _Node(Generic[T]):
    __slots__ = ("children", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        # A multiset: one pattern may bind the same value more than once
        # (a queue bound with one key but different arguments).
        self.values: dict[T, int] = {}


class TopicTrie(Generic[T]):
    """Patterns mapped to values; ``match`` gives every value whose pattern matches."""

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._count = 0

    def __len__(self) -> int:
        """How many (pattern, value) entries are held, counting repeats."""
        return self._count

    def add(self, pattern: str, value: T) -> None:
        node = self._root
        for word in split_words(pattern):
            child = node.children.get(word)
            if child is None:
                child = node.children[word] = _Node()
            node = child
        node.values[value] = node.values.get(value, 0) + 1
        self._count += 1

    def remove(self, pattern: str, value: T) -> bool:
        """Remove one entry; prune nodes left without values or children."""
        path: list[tuple[_Node[T], str]] = []
        node = self._root
        for word in split_words(pattern):
            child = node.children.get(word)
            if child is None:
                return False
            path.append((node, word))
            node = child
        held = node.values.get(value)
        if held is None:
            return False
        if held > 1:
            node.values[value] = held - 1
        else:
            del node.values[value]
        self._count -= 1
        self._prune(path, node)
        return True

    @staticmethod
    def _prune(path: list[tuple[_Node[T], str]], node: _Node[T]) -> None:
        for parent, word in reversed(path):
            if node.values or node.children:
                return
            del parent.children[word]
            node = parent

    def node_count(self) -> int:
        """Nodes in the trie, the root included (pruning shows here)."""
        return sum(1 for _ in self._nodes())

    def _nodes(self) -> Iterator[_Node[T]]:
        stack = [self._root]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.children.values())

    def match(self, key: str) -> set[T]:
        """Every value bound with a pattern that matches ``key``."""
        words = split_words(key)
        end = len(words)
        found: set[T] = set()
        # State: (node, words consumed, entered through '#'). A node reached
        # through '#' may swallow further words while staying put.
        stack: list[tuple[_Node[T], int, bool]] = [(self._root, 0, False)]
        # The flag follows from the node (its edge is '#'), so it is not part
        # of the memo key.
        seen: set[tuple[int, int]] = set()
        while stack:
            node, pos, absorbing = stack.pop()
            state = (id(node), pos)
            if state in seen:
                continue
            seen.add(state)
            children = node.children
            hash_child = children.get(ANY_WORDS)
            if hash_child is not None:
                stack.append((hash_child, pos, True))
            if pos == end:
                found.update(node.values)
                continue
            if absorbing:
                stack.append((node, pos + 1, True))
            exact = children.get(words[pos])
            if exact is not None:
                stack.append((exact, pos + 1, words[pos] == ANY_WORDS))
            star = children.get(ONE_WORD)
            if star is not None:
                stack.append((star, pos + 1, False))
        return found
