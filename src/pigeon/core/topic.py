"""A trie of topic binding patterns, matched against routing keys.

The separator and the two wildcards are parameters (:class:`TopicSyntax`): AMQP's
topic exchange splits on ``.`` with ``*`` and ``#`` (:data:`AMQP`), MQTT splits
topic names on ``/`` with ``+`` and ``#`` and hides ``$`` topics from wildcards at
the first level (:data:`MQTT`). Described here with AMQP's characters.

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
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


@dataclass(frozen=True)
class TopicSyntax:
    """How keys split into words, and which whole words are wildcards."""

    separator: str = "."
    one_word: str = "*"
    any_words: str = "#"
    # A first word starting with "$" is matched only by a pattern that names it, not
    # by a wildcard ([MQTT-4.7.2-1]: "#" and "+/..." do not match "$SYS/...").
    hide_dollar: bool = False

    def split(self, key: str) -> list[str]:
        """The words of a routing key or pattern; the empty key has none."""
        return key.split(self.separator) if key else []


AMQP = TopicSyntax()
MQTT = TopicSyntax(separator="/", one_word="+", any_words="#", hide_dollar=True)


def split_words(key: str) -> list[str]:
    """The words of an AMQP routing key or pattern; the empty key has none."""
    return AMQP.split(key)


class _Node(Generic[T]):
    __slots__ = ("children", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        # A multiset: one pattern may bind the same value more than once
        # (a queue bound with one key but different arguments).
        self.values: dict[T, int] = {}


class TopicTrie(Generic[T]):
    """Patterns mapped to values; ``match`` gives every value whose pattern matches."""

    def __init__(self, syntax: TopicSyntax = AMQP) -> None:
        self.syntax = syntax
        self._root: _Node[T] = _Node()
        self._count = 0

    def __len__(self) -> int:
        """How many (pattern, value) entries are held, counting repeats."""
        return self._count

    def add(self, pattern: str, value: T) -> None:
        node = self._root
        for word in self.syntax.split(pattern):
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
        for word in self.syntax.split(pattern):
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
        syntax = self.syntax
        one_word, any_words = syntax.one_word, syntax.any_words
        words = syntax.split(key)
        end = len(words)
        # Wildcards may not take a hidden first word: start below them.
        hidden = syntax.hide_dollar and end > 0 and words[0].startswith("$")
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
            wild = not (hidden and pos == 0)
            hash_child = children.get(any_words) if wild else None
            if hash_child is not None:
                stack.append((hash_child, pos, True))
            if pos == end:
                found.update(node.values)
                continue
            if absorbing:
                stack.append((node, pos + 1, True))
            exact = children.get(words[pos])
            if exact is not None:
                stack.append((exact, pos + 1, words[pos] == any_words))
            star = children.get(one_word) if wild else None
            if star is not None:
                stack.append((star, pos + 1, False))
        return found
