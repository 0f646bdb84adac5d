"""The accelerator checks (`benchmarks/bench_device.py`) run end to end at their --quick sizes
on this CPU, so a lent GPU's few minutes go to measuring, not to fixing the script."""

from __future__ import annotations

import math

import pytest

from benchmarks import bench_device


def test_device_rows_run_on_cpu_at_quick_sizes():
    rows = {row.name: row for row in bench_device.rows(quick=True)}
    assert "backend=cpu" in rows["environment"].extra and "jax=" in rows["environment"].extra
    timed = [row for row in rows.values() if row.ours_s]
    for row in timed:  # every timed row has both sides, finite and positive
        assert row.ref_s and math.isfinite(row.ours_s) and math.isfinite(row.ref_s), row.line()
    gpt = next(row for name, row in rows.items() if name.startswith("gpt bf16 train step"))
    resnet = next(row for name, row in rows.items() if name.startswith("resnet10 bf16"))
    for row in (gpt, resnet):
        assert "MFU=" in row.extra and "TFLOP/s=" in row.extra
    assert gpt.ref_name == "attention xla" and resnet.ref_name == "float32"
    assert [row.ref_name for row in timed if row.name.startswith("embedding gradient")] == [
        "jnp.take"]
    # on CPU "auto" takes the query blocks (causal) or the einsum path (a padding mask), and
    # cuDNN is named as missing, not timed
    assert rows["attention auto picks (causal)"].extra.startswith("blocked")
    assert rows["attention auto picks (padding mask)"].extra.startswith("naive")
    for kind in ("causal", "padding mask"):
        assert rows[f"attention cudnn ({kind})"].extra.startswith("unavailable: RuntimeError: cuDNN")
        kernels = sorted(row.ref_name for row in timed
                         if row.name.startswith("attention fwd+bwd") and f" {kind}: " in row.name)
        assert kernels == ["naive", "xla"], kind
    for row in timed:
        if row.name.startswith("attention fwd+bwd"):  # the same attention, bf16 rounding apart
            assert float(row.extra.split("=")[-1]) < 2e-2, row.line()
    loop = next(row for name, row in rows.items() if name.startswith("loop vs bare step"))
    assert loop.ref_name == "bare step" and "waited for input" in loop.extra
    assert "(train/input_busy)" in loop.extra and "(train/host_cpu)" in loop.extra


def test_full_sizes_are_skipped_on_cpu():
    names = [row.name for row in bench_device.rows(quick=False)]
    assert names == ["environment", "device rows"]


@pytest.mark.parametrize("tokens, vocab, dim", [(256, 64, 16), (4096, 256, 128)])
def test_embedding_row_times_a_program_of_its_ids(tokens, vocab, dim):
    """Both timed gradients take the ids and the cotangent as inputs of the compiled program:
    closed over as constants, XLA folded the whole gradient at `gpt_text`'s size on a GPU,
    and the row timed nothing."""
    grads, args = bench_device.embedding_gradients(tokens, vocab, dim)
    for grad in grads:
        hlo = grad.lower(*args).compile().as_text()
        layout = hlo[hlo.index("entry_computation_layout={("):].split(")->")[0]
        assert f"s32[{tokens}]" in layout and f"bf16[{tokens},{dim}]" in layout, layout


def test_sections_pick_the_rows_a_run_times(capsys):
    from benchmarks import run

    run.main(["--only", "device", "--quick", "--sections", "embedding"])
    names = [line.split("  ")[0] for line in capsys.readouterr().out.splitlines()]
    assert names[:2] == ["environment", "peak matmul (cpu, measured)"]
    assert len(names) == 3 and names[2].startswith("embedding gradient bf16"), names
    for argv, message in ((["--only", "device", "--sections", "lop"], "--sections lop: "
                           "benchmarks.bench_device has gpt, resnet, embedding, attention, loop"),
                          (["--only", "mlp", "--sections", "loop"],
                           "--sections: benchmarks.bench_mlp has no sections")):
        with pytest.raises(SystemExit):
            run.main(argv)
        assert message in capsys.readouterr().err
