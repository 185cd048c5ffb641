"""The hot path in machine instructions per message: ``benchmarks.hotpath`` under callgrind.

CPU time per message moves by several per cent between runs on a busy machine;
an instruction count does not (the same checkout gives the same count to five
digits, whatever else runs). ``valgrind --tool=callgrind`` runs the hot-path
harness twice, with two message counts, and the difference divided by the
difference in messages is the cost of one more message, start-up excluded. It
counts the whole process, so the harness's own parsing of the output (the same
for any checkout) is in it too. Slow (about a minute per run); Debian's
``valgrind``.

    python -m benchmarks.instructions                       # this checkout, 16 B
    python -m benchmarks.instructions --confirm --size 1024
    python -m benchmarks.instructions --checkout ../old --module bench.hotpath
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
_TOTAL = re.compile(r"I\s+refs:\s+([\d,]+)")


def instructions(checkout: Path, module: str, count: int, extra: Sequence[str]) -> int:
    """Instructions callgrind counted for one run of ``module`` with ``count`` messages."""
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=f"{checkout / 'src'}:{checkout}")
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={scratch}/out",
            sys.executable,
            "-m",
            module,
            "--count",
            str(count),
            "--rounds",
            "1",
            *extra,
        ]
        done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True)
    found = _TOTAL.search(done.stderr)
    if done.returncode or found is None:
        raise SystemExit(f"callgrind run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def per_message(
    checkout: Path, module: str, counts: tuple[int, int], extra: Sequence[str]
) -> float:
    low, high = (instructions(checkout, module, count, extra) for count in counts)
    return (high - low) / (counts[1] - counts[0])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkout", type=Path, default=HERE, help="the source tree to measure")
    p.add_argument("--module", default="benchmarks.hotpath", help="its hot-path harness")
    p.add_argument("--size", type=int, default=16, help="body bytes")
    p.add_argument("--confirm", action="store_true", help="publisher confirms")
    p.add_argument("--counts", default="10000,30000", help="the two message counts")
    args = p.parse_args(argv)
    low, high = (int(n) for n in args.counts.split(","))
    extra = ["--size", str(args.size)] + (["--confirm"] if args.confirm else [])
    cost = per_message(args.checkout.resolve(), args.module, (low, high), extra)
    confirms = "on" if args.confirm else "off"
    print(f"{cost:,.0f} instructions per message (size {args.size}, confirms {confirms})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
