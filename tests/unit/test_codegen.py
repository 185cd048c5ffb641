"""methods.py is what tools/codegen.py makes of the spec; reply codes match it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pigeon.protocols.amqp091.replies import ReplyCode, is_hard_error

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import codegen  # noqa: E402

SPEC = json.loads(codegen.DEFAULT_SPEC.read_text())


def test_generated_methods_are_current() -> None:
    committed = (ROOT / "src/pigeon/protocols/amqp091/methods.py").read_text()
    assert codegen.render(SPEC) == committed, "run: python tools/codegen.py"


def test_reply_codes_are_the_spec_constants() -> None:
    # Reply codes: the constants in 200..599 but FRAME-END (206, the end octet).
    constants = {
        c["name"].replace("-", "_"): c
        for c in SPEC["constants"]
        if 200 <= c["value"] < 600 and c["name"] != "FRAME-END"
    }
    assert {code.name: int(code) for code in ReplyCode} == {
        name: c["value"] for name, c in constants.items()
    }
    for name, constant in constants.items():
        hard = constant.get("class") == "hard-error"
        assert ReplyCode[name].is_hard is hard
        assert is_hard_error(constant["value"]) is hard
