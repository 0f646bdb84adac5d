"""Runs every benchmark module (`benchmarks/bench_*.py`) and prints one line per row.

    python -m benchmarks.run [--quick] [--only cnn,rnn] [--sections loop,embedding]

Each module exposes `rows(quick: bool) -> Iterable[Row]`; one with parts a run may pick
has them in `SECTIONS` and its `rows` also takes `sections` (`bench_device`).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import benchmarks
from dl_arch.train.host_memory import keep_freed_memory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repeats, small sizes")
    parser.add_argument("--only", default="", help="comma-separated module suffixes")
    parser.add_argument("--sections", default="",
                        help="comma-separated sections of the modules that have them "
                             "(device: gpt, resnet, embedding, attention, loop)")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as every run of the loop does (dl_arch.train.host_memory)
    only = set(filter(None, args.only.split(",")))
    sections = tuple(filter(None, args.sections.split(",")))
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__)
                   if m.name.startswith("bench_"))
    for name in names:
        if only and name.removeprefix("bench_") not in only:
            continue
        module = importlib.import_module(f"benchmarks.{name}")
        kwargs = {}
        if sections:
            known = getattr(module, "SECTIONS", None)
            if known is None:
                parser.error(f"--sections: benchmarks.{name} has no sections; pick with --only "
                             f"the modules that have them (device)")
            unknown = sorted(set(sections) - set(known))
            if unknown:
                parser.error(f"--sections {','.join(unknown)}: benchmarks.{name} has "
                             f"{', '.join(known)}")
            kwargs["sections"] = sections
        for row in module.rows(args.quick, **kwargs):
            print(row.line(), flush=True)
    sys.stdout.flush()


def main_for(family: str) -> None:
    """`python -m benchmarks.bench_<family> [--quick]`: that module's rows, run as
    `--only <family>` so that they get a full run's setup (freed host memory kept)."""
    main(["--only", family, *sys.argv[1:]])


if __name__ == "__main__":
    main()
