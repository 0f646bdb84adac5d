"""Runs every benchmark module (`benchmarks/bench_*.py`) and prints one line per row.

    python -m benchmarks.run [--quick] [--only cnn,rnn]

Each module exposes `rows(quick: bool) -> Iterable[Row]`.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import benchmarks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repeats, small sizes")
    parser.add_argument("--only", default="", help="comma-separated module suffixes")
    args = parser.parse_args(argv)
    only = set(filter(None, args.only.split(",")))
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__)
                   if m.name.startswith("bench_"))
    for name in names:
        if only and name.removeprefix("bench_") not in only:
            continue
        module = importlib.import_module(f"benchmarks.{name}")
        for row in module.rows(args.quick):
            print(row.line(), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
