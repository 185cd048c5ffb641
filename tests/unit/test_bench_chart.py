"""benchmarks.chart draws a saved size sweep (no broker needed; skipped without matplotlib)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # ``bench`` lives at the repository root, not under src/
    sys.path.insert(0, str(REPO))

from benchmarks import chart  # noqa: E402


def test_chart_draws_a_png_from_a_saved_sweep(tmp_path: Path) -> None:
    sweep = {
        "sizes": [16, 1024, 65536],
        "machine": "test",
        "brokers": {
            "rabbitmq": {"version": "RabbitMQ 3.10", "msg_s": [50e3, 40e3, 3e3],
                         "mb_s": [0.8, 41.0, 196.6]},
            "pigeon": {"version": "Pigeon 0.1", "msg_s": [70e3, 60e3, None],
                       "mb_s": [1.1, 61.4, None]},  # no good run at 64 KiB
        },
    }  # fmt: skip
    saved, png = tmp_path / "sweep.json", tmp_path / "sizes.png"
    saved.write_text(json.dumps(sweep))

    assert chart.main(["--from-json", str(saved), "--output", str(png)]) == 0

    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_size_labels() -> None:
    assert [chart.label(s) for s in chart.SIZES] == [
        "16 B", "128 B", "1 KiB", "4 KiB", "16 KiB", "64 KiB",
    ]  # fmt: skip
