"""Speech models: output lengths against unpadded runs, padding invariance, both recurrent
directions against numpy written from the cell equations, parameter counts by hand, bfloat16,
one-line errors, and learning one batch (CTC through optax.ctc_loss; cross-entropy for keywords).
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import model_fields
from dl_arch.models.cnn.common import param_count
from dl_arch.registry import MODELS
from dl_arch.testing import adam_on_one_batch

CTC = ["deepspeech2_tiny", "transformer_ctc_tiny", "conv_ctc_tiny"]
KWS = ["kws_cnn_tiny", "kws_crnn_tiny", "kws_cnn"]
FAST_RNGS = {"params": jax.random.key(0, impl="unsafe_rbg")}
# Fields that switch dropout off, so train-mode outputs are deterministic.
NO_DROPOUT = {"deepspeech2_tiny": {"dropout": 0.0}, "kws_crnn_tiny": {"dropout": 0.0},
              "conv_ctc_tiny": {"dropout": 0.0},
              "transformer_ctc_tiny": {"dropout_rate": 0.0}, "kws_cnn_tiny": {"dropout_rate": 0.0},
              "kws_cnn": {"dropout_rate": 0.0}}
MELS = 20


def _features(batch: int, frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, frames, MELS)).astype(np.float32)


def _init(model, x, lengths, seed: int = 0):
    """Variables drawn by numpy in the shapes of `model.init` (an eager init of the recurrent
    models takes seconds to compile on a CPU): weights ~ N(0, 1 / fan_in), biases ~ N(0, 0.1),
    BatchNorm scales and variances 1, means 0."""
    shapes = jax.eval_shape(lambda x: model.init(FAST_RNGS, x, jnp.asarray(lengths, jnp.int32)),
                            jnp.asarray(x))
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        if len(leaf.shape) >= 2:
            value = rng.standard_normal(leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
        elif name in ("scale", "var"):
            value = np.ones(leaf.shape)
        elif name == "mean":
            value = np.zeros(leaf.shape)
        else:
            value = 0.1 * rng.standard_normal(leaf.shape)
        return jax.device_put(value.astype(leaf.dtype))  # no jnp program per shape

    return jax.tree_util.tree_map_with_path(fill, shapes)


def _apply(model, train: bool = False, mutable: tuple[str, ...] = ()):
    """`model.apply` jitted (eager recurrent layers dispatch thousands of small ops)."""
    def run(variables, x, lengths):
        return model.apply(variables, x, lengths, train=train, mutable=list(mutable) or False,
                           rngs={"dropout": jax.random.key(0)})
    return jax.jit(run)


def _out(name: str, out):
    """The per-frame outputs of a CTC model (logits, out_len) or a keyword model's logits."""
    return out if name in CTC else (out, None)


# ------------------------------------------------------------- shapes and output lengths

@pytest.mark.parametrize("name,fields,factor", [
    ("deepspeech2_tiny", {}, 2), ("deepspeech2_tiny", {"time_subsampling": 4}, 4),
    ("transformer_ctc_tiny", {"subsampling": 2}, 2), ("conv_ctc_tiny", {}, 2),
    ("conv_ctc_tiny", {"time_subsampling": 4}, 4)])
def test_out_len_is_the_length_of_an_unpadded_run(name, fields, factor):
    """out_len of each padded example = the number of frames the model gives for exactly its
    real frames = ceil(ceil(T / 2) / (factor / 2))."""
    model = MODELS.get(name)(**fields)
    lengths = [1, 2, 3, 6, 9, 12]
    x = _features(len(lengths), 12)
    variables = _init(model, x, lengths)
    logits, out_len = _apply(model)(variables, x, jnp.asarray(lengths, jnp.int32))
    t_out = math.ceil(math.ceil(12 / 2) / (factor // 2))
    chex.assert_shape(logits, (len(lengths), t_out, 29))
    chex.assert_type([logits, out_len], [jnp.float32, jnp.int32])
    expected = [math.ceil(math.ceil(n / 2) / (factor // 2)) for n in lengths]
    np.testing.assert_array_equal(out_len, expected)
    for i, n in enumerate(lengths):  # shapes only: the values are the padding test's
        alone = jax.eval_shape(model.apply, variables, x[i:i + 1, :n], jnp.array([n], jnp.int32))
        assert alone[0].shape == (1, expected[i], 29)


@pytest.mark.parametrize("name", KWS)
def test_keyword_models_give_float32_class_logits(name):
    model = MODELS.get(name)(num_classes=7)
    x = _features(3, 25)
    logits = _apply(model)(_init(model, x, [25, 10, 3]), x, jnp.array([25, 10, 3]))
    chex.assert_shape(logits, (3, 7))
    chex.assert_type(logits, jnp.float32)


@pytest.mark.parametrize("name", CTC)
def test_logits_stay_float32_when_computing_in_bfloat16(name):
    model = MODELS.get(name)(dtype=jnp.bfloat16)
    x = _features(2, 16)
    out, _ = _out(name, _apply(model)(_init(model, x, [16, 9]), x, jnp.array([16, 9])))
    chex.assert_type(out, jnp.float32)
    assert np.isfinite(np.asarray(out)).all()


# ------------------------------------------------------------------ padding invariance

def _with_garbage(x: np.ndarray, lengths: list[int], extra: int, seed: int) -> np.ndarray:
    """`x` with `extra` frames appended and every frame past each length set to large noise."""
    b, t, f = x.shape
    garbage = 50.0 * np.random.default_rng(seed).standard_normal((b, t + extra, f))
    out = garbage.astype(np.float32)
    for i, n in enumerate(lengths):
        out[i, :n] = x[i, :n]
    return out


def _assert_real_frames_equal(name, out_a, out_b):
    (a, len_a), (b, len_b) = _out(name, out_a), _out(name, out_b)
    if len_a is None:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        return
    np.testing.assert_array_equal(len_a, len_b)
    for i, n in enumerate(np.asarray(len_a)):
        np.testing.assert_allclose(a[i, :n], b[i, :n], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", CTC + KWS[:2])
def test_padding_frames_never_change_real_outputs(name):
    """Garbage in the padding and extra padding frames change no real output, in eval mode
    and in train mode (nor the BatchNorm statistics); the shortest example alone, unpadded,
    gives what it gives in the batch."""
    model = MODELS.get(name)(**NO_DROPOUT[name])
    lengths = [21, 14, 5]
    x = _features(3, 21, seed=1)
    variables = _init(model, x, lengths)
    tight = _with_garbage(x, lengths, extra=0, seed=3)  # the first example fills all 21 frames
    padded = _with_garbage(x, lengths, extra=6, seed=2)
    lengths_B = jnp.asarray(lengths)
    run = _apply(model)
    batch_out = run(variables, padded, lengths_B)
    _assert_real_frames_equal(name, run(variables, tight, lengths_B), batch_out)
    alone = run(variables, x[2:, :5], lengths_B[2:])
    _assert_real_frames_equal(name, alone, jax.tree.map(lambda a: a[2:], batch_out))

    train = _apply(model, train=True, mutable=("batch_stats",))
    out_a, stats_a = train(variables, tight, lengths_B)
    out_b, stats_b = train(variables, padded, lengths_B)
    _assert_real_frames_equal(name, out_a, out_b)
    chex.assert_trees_all_close(stats_a, stats_b, rtol=1e-5, atol=1e-5)


# --------------------------------------------- both recurrent directions against numpy

def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _numpy_rnn(cell: str, p: dict, x_TD: np.ndarray) -> np.ndarray:
    """One direction over exactly the given frames, from zero state: the equations of
    `dl_arch.models.rnn`'s docstring (LSTM gates [i, f, g, o]; GRU [r, z, n], reset after)."""
    w_ih, w_hh, b = (np.asarray(p[k], np.float64) for k in ("w_ih", "w_hh", "b"))
    hid = w_hh.shape[0]
    h, c = np.zeros(hid), np.zeros(hid)
    out = []
    for x in x_TD.astype(np.float64):
        xg, hg = x @ w_ih + b, h @ w_hh
        if cell == "lstm":
            i, f, g, o = np.split(xg + hg, 4)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
        else:
            hn = hg[2 * hid:] + np.asarray(p["b_hn"], np.float64)
            r = _sigmoid(xg[:hid] + hg[:hid])
            z = _sigmoid(xg[hid:2 * hid] + hg[hid:2 * hid])
            n = np.tanh(xg[2 * hid:] + r * hn)
            h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_backward_direction_starts_at_the_last_real_frame(cell):
    """deepspeech2's first bidirectional layer: the forward half is the cell run over the real
    frames, the backward half the cell run from the real last frame back (not from the end of
    the padding); padded frames output zeros."""
    model = MODELS.get("deepspeech2_tiny")(cell=cell, num_layers=1)
    lengths = [20, 11]
    x = _with_garbage(_features(2, 20, seed=5), lengths, extra=4, seed=6)
    variables = _init(model, x, lengths)
    (_, out_len), state = _apply(model, mutable=("intermediates",))(variables, x,
                                                                    jnp.asarray(lengths))
    inputs = np.asarray(state["intermediates"]["rnn_inputs"][0])
    outputs = np.asarray(state["intermediates"]["rnn_outputs"][0])
    rnn = variables["params"]["rnn"]
    hid = 32
    for i, n in enumerate(np.asarray(out_len)):
        fwd = _numpy_rnn(cell, rnn["layer_0_fwd"], inputs[i, :n])
        bwd = _numpy_rnn(cell, rnn["layer_0_bwd"], inputs[i, :n][::-1])[::-1]
        np.testing.assert_allclose(outputs[i, :n, :hid], fwd, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(outputs[i, :n, hid:], bwd, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(outputs[i, n:], 0.0)
    assert list(out_len) == [10, 6] and outputs.shape[1] == 12  # 20 + 4 frames -> 12


def test_ctc_vocabulary_default_is_the_character_vocabulary():
    """Models never import data, so the default is a number; it must stay the data's size."""
    from dl_arch.data.speech_text import CHAR_VOCAB_SIZE

    for name in ("deepspeech2", "deepspeech2_tiny", "transformer_ctc", "transformer_ctc_tiny",
                 "conv_ctc", "conv_ctc_tiny"):
        assert model_fields(MODELS.get(name))["vocab_size"].default == CHAR_VOCAB_SIZE


# ---------------------------------------------------------------- parameter counts

def _conv(kt: int, kf: int, cin: int, cout: int, bias: bool) -> int:
    return kt * kf * cin * cout + (cout if bias else 0)


def _recurrent(cell: str, d: int, h: int) -> int:
    """w_ih [D, G], w_hh [H, G], one bias [G] (G = 4H lstm, 3H gru) and the GRU's b_hn [H]."""
    g = {"lstm": 4, "gru": 3}[cell] * h
    return d * g + h * g + g + (h if cell == "gru" else 0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_deepspeech2_count_by_hand(cell):
    model = MODELS.get("deepspeech2")(cell=cell)  # 32 ch, 11x41 and 11x21, 3 x 512 bi
    x = jax.ShapeDtypeStruct((1, 50, 80), jnp.float32)
    shapes = jax.eval_shape(lambda x: model.init(FAST_RNGS, x, jnp.array([50])), x)
    convs = _conv(11, 41, 1, 32, False) + 2 * 32 + _conv(11, 21, 32, 32, False) + 2 * 32
    d = 20 * 32  # 80 mels -> 40 -> 20, times 32 channels
    rnn = 2 * (_recurrent(cell, d, 512) + 2 * _recurrent(cell, 1024, 512))
    assert param_count(shapes["params"]) == convs + rnn + 1024 * 29 + 29
    assert param_count(shapes["batch_stats"]) == 4 * 32


def test_transformer_ctc_count_by_hand():
    model = MODELS.get("transformer_ctc")()  # ESPnet's small encoder: 256 wide, 12 x (4 heads, 2048)
    x = jax.ShapeDtypeStruct((1, 64, 80), jnp.float32)
    shapes = jax.eval_shape(lambda x: model.init(FAST_RNGS, x, jnp.array([64])), x)
    e, m = 256, 2048
    subsample = _conv(3, 3, 1, e, True) + _conv(3, 3, e, e, True) + 20 * e * e + e
    block = 2 * 2 * e + 4 * (e * e + e) + (e * m + m) + (m * e + e)
    assert param_count(shapes["params"]) == subsample + 12 * block + 2 * e + e * 29 + 29


def test_conv_ctc_count_by_hand():
    """Front end (two bias-free convs + BatchNorm scale/shift), 1-D time convs + BatchNorm,
    dense head; the mel axis is halved by each front-end conv."""
    model = MODELS.get("conv_ctc")(conv_channels=(4, 6), time_kernels=(3, 5), mel_kernels=(5, 3),
                                   channels=10, kernel=3, num_layers=2)
    x = jnp.zeros((1, 16, MELS))
    variables = jax.eval_shape(lambda: model.init(FAST_RNGS, x, jnp.array([16])))
    mels = math.ceil(math.ceil(MELS / 2) / 2)
    front = _conv(3, 5, 1, 4, False) + 2 * 4 + _conv(5, 3, 4, 6, False) + 2 * 6
    time = 3 * mels * 6 * 10 + 2 * 10 + 3 * 10 * 10 + 2 * 10
    assert param_count(variables["params"]) == front + time + 10 * 29 + 29


def test_kws_cnn_count_by_hand():
    model = MODELS.get("kws_cnn")(num_classes=12)  # 3x3 convs 16, 32, 64 with BN
    x = jax.ShapeDtypeStruct((1, 98, 40), jnp.float32)
    shapes = jax.eval_shape(lambda x: model.init(FAST_RNGS, x, jnp.array([98])), x)
    convs = sum(_conv(3, 3, cin, c, False) + 2 * c for cin, c in ((1, 16), (16, 32), (32, 64)))
    assert param_count(shapes["params"]) == convs + 5 * 64 * 12 + 12  # 40 mels -> 5


# ---------------------------------------------------------------- one-line errors

@pytest.mark.parametrize("name,fields,shape,match", [
    ("deepspeech2_tiny", {}, (2, 16), "frames, mels"),
    ("deepspeech2_tiny", {"time_subsampling": 3}, (2, 16, MELS), "time_subsampling"),
    ("deepspeech2_tiny", {"time_kernels": (4, 5)}, (2, 16, MELS), "odd"),
    ("deepspeech2_tiny", {"conv_channels": (8,)}, (2, 16, MELS), "two entries"),
    ("transformer_ctc_tiny", {"subsampling": 8}, (2, 16, MELS), "subsampling"),
    ("kws_cnn_tiny", {"time_strides": (1,)}, (2, 16, MELS), "one stride per block"),
    ("kws_crnn_tiny", {"pool": "max"}, (2, 16, MELS), "pool"),
])
def test_bad_fields_and_inputs_fail_in_one_line(name, fields, shape, match):
    model = MODELS.get(name)(**fields)
    with pytest.raises(ConfigError, match=match):
        model.init(FAST_RNGS, jnp.zeros(shape), jnp.array([16, 8]))


# ---------------------------------------------------------------- learning one batch

def _greedy(logits_TV: np.ndarray) -> list[int]:
    """Best path: argmax per frame, repeats merged, blanks (0) dropped."""
    best = np.argmax(logits_TV, axis=-1)
    return [int(k) for j, k in enumerate(best) if k != 0 and (j == 0 or k != best[j - 1])]


@pytest.mark.parametrize("name,steps", [("deepspeech2_tiny", 250), ("transformer_ctc_tiny", 100),
                                        ("conv_ctc_tiny", 150)])
def test_ctc_model_overfits_one_batch(name, steps):
    """optax.ctc_loss with frame and label paddings; eval-mode greedy decoding then gives the
    labels exactly (CER 0)."""
    model = MODELS.get(name)(**NO_DROPOUT[name])
    lengths = jnp.array([48, 44, 40, 36])
    x = jnp.asarray(_features(4, 48, seed=7))
    targets = [[3, 9, 3, 14, 5], [20, 8, 1, 28], [7, 7, 2, 19], [11, 4, 11]]
    labels = np.zeros((4, 6), np.int32)
    for i, t in enumerate(targets):
        labels[i, :len(t)] = t
    label_pad = jnp.asarray(labels == 0, jnp.float32)

    def loss_of(out):
        logits, out_len = out
        frame_pad = (jnp.arange(logits.shape[1])[None, :] >= out_len[:, None]).astype(jnp.float32)
        return optax.ctc_loss(logits, frame_pad, jnp.asarray(labels), label_pad).mean()

    losses, variables = adam_on_one_batch(model, _init(model, x, lengths), (x, lengths), loss_of,
                                          steps=steps, lr=1e-2)
    assert losses[-1] < 0.01 * losses[0], losses[::10]
    logits, out_len = _apply(model)(variables, x, lengths)
    hyps = [_greedy(np.asarray(logits[i, :n])) for i, n in enumerate(np.asarray(out_len))]
    assert hyps == targets


def test_keyword_model_overfits_one_batch():
    model = MODELS.get("kws_crnn_tiny")(num_classes=4, **NO_DROPOUT["kws_crnn_tiny"])
    lengths = jnp.array([30, 25, 20, 30, 12, 28, 30, 17])
    x = jnp.asarray(_features(8, 30, seed=8))
    labels = jnp.arange(8) % 4

    def loss_of(logits):
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    losses, variables = adam_on_one_batch(model, _init(model, x, lengths), (x, lengths), loss_of,
                                          steps=80, lr=1e-2)
    assert losses[-5:].max() < 0.1 * losses[0], losses[::10]
    logits = _apply(model)(variables, x, lengths)
    np.testing.assert_array_equal(np.argmax(logits, -1), labels)
