#!/usr/bin/env bash
# Fetches, into .whl/ (git-ignored), the wheels the lent GPU machine's Python 3.12 image lacks
# for `python -m benchmarks.run --only device`: grain and its array_record and portpicker,
# ml_collections and tensorboardX (jax, flax, optax, orbax and the rest are in the image).
# Run here, where pip reaches the registry; the machine itself reaches nothing. The command
# to run there is in docs/results/benchmarks.md ("On a lent GPU").
set -euo pipefail
cd "$(dirname "$0")/.."
platforms=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${p}_x86_64")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" -d .whl \
  grain==0.2.18 array-record==0.8.6 portpicker==1.6.0 ml-collections==1.1.0 tensorboardX==2.6.5
ls -l .whl
