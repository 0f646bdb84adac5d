#!/usr/bin/env bash
# The quick benchmark rows with XLA:CPU's concurrency-optimised scheduler on (default) and
# off, alternated twice in separate processes (the option is read from XLA_FLAGS only).
cd "$(dirname "$0")/../../.." || exit
for round in 1 2; do
  for mode in default off; do
    if [ "$mode" = off ]; then
      export XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false
    else
      unset XLA_FLAGS
    fi
    echo "=== round $round $mode $(date +%T)"
    PYTHONPATH=. python -m benchmarks.run --quick --only cnn,transformer,rnn,generative,mlp,detection
  done
done
