"""RoBERTa-style pretraining: dynamic masking (fresh each epoch, the same for a seed), packed
full-sentence inputs, and the config that pretrains then fine-tunes."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from dl_arch.data.pipeline import make_source
from dl_arch.data.tokenizers import BOS, EOS
from dl_arch.tasks import masked_lm
from dl_arch.testing import load_config
from dl_arch.train.trainer import Trainer

SMOKE = "configs/roberta_pretrain_offline.py:smoke"


def _masks_per_epoch(trainer: Trainer, step, epochs: int = 3) -> list[dict[bytes, np.ndarray]]:
    """One run from scratch (fresh state and data iterator of `trainer`): `epochs` steps on
    a split of exactly one batch (one step = one epoch, reshuffled); per epoch, example
    tokens -> positions masked, as the recording `corrupt` saw them inside the jitted step."""
    seen.clear()
    batches = iter(trainer.train_dataset())
    state = trainer.init_state(trainer.first_batch())
    out = []
    for _ in range(epochs):
        state, _ = step(state, next(batches))
        jax.block_until_ready(state)
        tokens, selected = seen[-1]
        out.append({row.tobytes(): sel for row, sel in zip(tokens, selected, strict=True)})
    assert len(seen) == epochs
    return out


seen: list[tuple[np.ndarray, np.ndarray]] = []


def test_masks_differ_between_epochs_and_repeat_for_the_same_seed(monkeypatch):
    corrupt = masked_lm.corrupt

    def recording(rng, tokens_BT, *args, **kwargs):
        out = corrupt(rng, tokens_BT, *args, **kwargs)
        jax.debug.callback(lambda t, w: seen.append((np.asarray(t), np.asarray(w))),
                           tokens_BT, out[1])
        return out

    monkeypatch.setattr(masked_lm, "corrupt", recording)
    config = load_config(SMOKE)
    config.dataset.num_train_examples = config.batch_size
    trainer = Trainer(config)  # everything a run derives comes from the config and its seed
    step = trainer.train_step(donate=False)
    run, again = _masks_per_epoch(trainer, step), _masks_per_epoch(trainer, step)
    examples = list(run[0])
    assert len(examples) == config.batch_size  # distinct examples, each seen every epoch
    for epoch in run[1:]:
        assert sorted(epoch) == sorted(examples)
    for a, b in [(0, 1), (1, 2), (0, 2)]:
        differ = [not np.array_equal(run[a][x], run[b][x]) for x in examples]
        assert sum(differ) >= len(examples) - 1, (a, b, differ)  # a fresh mask per epoch
    for epoch, epoch_again in zip(run, again, strict=True):  # the same seed: the same masks
        assert all(np.array_equal(epoch[x], epoch_again[x]) for x in examples)
    rate = np.mean([m.sum() / (np.frombuffer(x, np.int32) >= 4).sum()
                    for e in run for x, m in e.items()])
    assert 0.10 < rate < 0.20  # 15% of content tokens


def test_packed_examples_are_full_sentences_of_one_topic_up_to_max_len():
    config = load_config(SMOKE)
    from dl_arch.config.resolve import resolve_config

    data = resolve_config(config).dataset
    packed = make_source(data, "train", 0)
    single = make_source(ml_collections.ConfigDict({**data.to_dict(), "pack_sentences": False}),
                         "train", 0)
    lengths = []
    for i in range(20):
        ids = packed[i]["inputs"]
        assert ids[0] == BOS and len(ids) == data.max_len == 128
        used = ids[:np.nonzero(ids)[0][-1] + 1]
        assert used[-1] == EOS and (used[1:] == BOS).sum() == 0
        sentences = np.split(used[1:], np.nonzero(used[1:] == EOS)[0][:-1] + 1)
        assert len(sentences) >= 5 and all(s[-1] == EOS and len(s) > 3 for s in sentences)
        longest = 3 * (2 + data.max_adjectives) + 2  # the next sentence would not have fitted
        assert len(used) > data.max_len - longest
        lengths.append(len(used))
        one = single[i]["inputs"]  # unpacked: one sentence, then padding
        assert (one == EOS).sum() == 1
    assert np.mean(lengths) > 4 * np.mean([np.count_nonzero(single[i]["inputs"])
                                           for i in range(20)])
    np.testing.assert_array_equal(packed[3]["inputs"], make_source(data, "train", 0)[3]["inputs"])


def test_finetuning_config_loads_every_pretrained_encoder_tensor():
    from dl_arch.train.transfer import merge_matching

    def params(config):  # zeros of the shapes the run's init gives (nothing computed)
        trainer = Trainer(config)
        shapes = trainer.abstract_state(trainer.first_batch()).params
        return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)

    finetune = load_config("configs/bert_finetune_offline.py:smoke")
    finetune.model.max_len = 128  # as the docstring's fine-tuning command sets it
    _, report = merge_matching(params(finetune), params(load_config(SMOKE)))
    assert report["skipped"] == []  # no shape differs: position table included
    assert sorted(report["new"]) == ["classifier/bias", "classifier/kernel", "pooler/bias",
                                     "pooler/kernel"], report["new"]
