"""Scratch (stop 61): one 3x3 stride-1 convolution at ResNet-18's shapes, batch 128, its
forward, input gradient and kernel gradient each jitted alone (`model_jit`, as the train
steps compile them), against PyTorch's `conv2d`, `conv2d_input` and `conv2d_weight` on
channels_last tensors; best of 3 x 10 calls, ms.

    PYTHONPATH=. python docs/results/cpu_zen4_2026-12-05/conv_parts.py H C O
"""
# ruff: noqa: E402, E741, E501, B007

import sys

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

import jax
import jax.numpy as jnp
import numpy as np
import torch
from best_of import best_ms

B, H, C, O = (
    128,
    int(sys.argv[1]) if len(sys.argv) > 1 else 32,
    int(sys.argv[2]) if len(sys.argv) > 2 else 64,
    int(sys.argv[3]) if len(sys.argv) > 3 else 64,
)
rng = np.random.default_rng(0)
x = jnp.asarray(rng.standard_normal((B, H, H, C)), jnp.float32)
w = jnp.asarray(rng.standard_normal((3, 3, C, O)) * 0.05, jnp.float32)
dy = jnp.asarray(rng.standard_normal((B, H, H, O)), jnp.float32)
dn = ("NHWC", "HWIO", "NHWC")
conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)
from dl_arch.train.compile_options import model_jit

J = model_jit
fwd = J(conv)
_, vjp = jax.vjp(conv, x, w)
dx = J(lambda dy, w: jax.vjp(lambda x: conv(x, w), x)[1](dy)[0])
dw = J(lambda dy, x: jax.vjp(lambda w: conv(x, w), w)[1](dy)[0])
tx = torch.from_numpy(np.asarray(x)).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
tw = torch.from_numpy(np.asarray(w)).permute(3, 2, 0, 1).contiguous()
tdy = torch.from_numpy(np.asarray(dy)).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
F = torch.nn.functional
tf = lambda: F.conv2d(tx, tw, padding=1)
tdx = lambda: torch.nn.grad.conv2d_input(tx.shape, tw, tdy, padding=1)
tdw = lambda: torch.nn.grad.conv2d_weight(tx, tw.shape, tdy, padding=1)


def t(f, n=10):
    return best_ms(f, n)


with torch.no_grad():
    for _r in range(2):
        print(
            f"H{H} {C}->{O} fwd jax {t(lambda: fwd(x, w)):.2f} torch {t(tf):.2f} | dx jax {t(lambda: dx(dy, w)):.2f} torch {t(tdx):.2f} | dw jax {t(lambda: dw(dy, x)):.2f} torch {t(tdw):.2f}"
        )
