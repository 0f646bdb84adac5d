"""dl_arch: classic deep-learning architectures in JAX/Flax, one shared training loop."""
