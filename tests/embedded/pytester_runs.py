"""Running a pytest suite in a subprocess with the Pigeon plugin, as a user's project would."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
timeout = 60
"""


def plugin_args() -> list[str]:
    """Load the plugin by name unless the installed entry point already does."""
    registered = any(ep.value == "pigeon.pytest_plugin" for ep in entry_points(group="pytest11"))
    return [] if registered else ["-p", "pigeon.pytest_plugin"]


def run(pytester: pytest.Pytester, *args: str, ini: str = INI) -> pytest.RunResult:
    pytester.makeini(ini)
    return pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider", *args)
