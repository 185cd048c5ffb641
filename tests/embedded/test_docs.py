"""The examples in docs/embedding.md run: test files under pytest with the plugin, scripts as is."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pytester_runs import INI, run

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parents[2] / "docs" / "embedding.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks() -> list[str]:
    found = BLOCK.findall(DOC.read_text())
    assert found, f"no python examples in {DOC}"
    return found


def test_the_doc_has_examples_of_each_kind() -> None:
    text = "\n".join(blocks())
    for needle in ("import pika", "import aio_pika", "import paho", "start_worker", "asyncio.run("):
        assert needle in text


@pytest.mark.parametrize("index", [i for i, b in enumerate(blocks()) if "def test_" not in b])
def test_script_examples_run(index: int, tmp_path: Path) -> None:
    script = tmp_path / f"example_{index}.py"
    script.write_text(blocks()[index])
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_pytest_examples_pass(pytester: pytest.Pytester) -> None:
    examples = [b for b in blocks() if "def test_" in b]
    tests = sum(len(re.findall(r"^(?:async )?def test_", b, re.MULTILINE)) for b in examples)
    pytester.makepyfile(**{f"test_doc_example_{i}": b for i, b in enumerate(examples)})
    # pytest-asyncio's default (strict) mode, as in a project that never configured it: an
    # async example must carry its own marker.
    strict = "\n".join(line for line in INI.splitlines() if not line.startswith("asyncio_mode"))
    result = run(pytester, ini=strict)
    result.assert_outcomes(passed=tests)
