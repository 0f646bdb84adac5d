"""The benchmark's MobileNetV2 row (stop 58) with every depthwise kernel gradient autodiff's
(the code before the change) and with `DEPTHWISE_GRAD_MIN_CHANNELS` as landed, in one
process, each against PyTorch's step.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/mobilenet_row_ab.py
"""

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

from benchmarks import bench_cnn  # noqa: E402
from dl_arch.models.cnn import taps  # noqa: E402
from dl_arch.registry import MODELS  # noqa: E402

torch = bench_cnn._torch_modules()[0]
landed = taps.DEPTHWISE_GRAD_MIN_CHANNELS
for name, min_channels in (("autodiff", 10**9), ("landed", landed), ("autodiff", 10**9),
                           ("landed", landed)):
    taps.DEPTHWISE_GRAD_MIN_CHANNELS = min_channels
    torch.manual_seed(0)
    model = MODELS.get("mobilenet_v2")(num_classes=10, stem="small", dropout_rate=0.0)
    row = bench_cnn._row(f"mobilenet_v2 b32, {name}", model, bench_cnn._torch_mobilenet_v2(torch)(10),
                         torch, 32, 32, 3, 10, False)
    print(row.line(), flush=True)
