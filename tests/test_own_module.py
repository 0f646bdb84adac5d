"""A user's own source, in a file outside the package, named by `config.dataset.module`."""

from __future__ import annotations

import json
import textwrap

import pytest

from dl_arch.config.errors import ConfigError
from dl_arch.config.resolve import Text, resolve_config
from dl_arch.testing import load_config
from dl_arch.train.loop import train_and_evaluate

SOURCE = textwrap.dedent('''
    """Two Gaussian blobs, written by a user outside dl_arch."""
    import numpy as np

    from dl_arch.config.fields import Field
    from dl_arch.registry import register_dataset


    class Blobs:
        def __init__(self, n, offset, salt):
            self.n, self.offset, self.salt = n, offset, salt

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            rng = np.random.default_rng([self.salt, i])
            label = i % 2
            x = rng.normal(size=2).astype(np.float32) * 0.3 + (self.offset if label else -self.offset)
            return {"inputs": x, "label": np.int32(label)}


    @register_dataset("NAME", fields={"offset": Field(1.5, "distance of each blob from 0")})
    def blobs(cfg, split, seed):
        return Blobs(512 if split == cfg.train_split else 128, cfg.offset, 0 if split == "train" else 1)
''')


def _config(path, name, **fields):
    config = load_config("configs/mlp_xor.py:smoke")
    config.dataset = {"name": name, "module": str(path), **fields}
    config.num_train_steps = 60
    config.eval_every_steps = 60
    config.optimizer.schedule = "constant"
    return config


@pytest.mark.parametrize("workers", [0, 1])  # in this process; in a grain worker process
def test_a_source_in_a_users_file_trains_by_name(tmp_path, workers):
    path = tmp_path / f"my_blobs_{workers}.py"
    path.write_text(SOURCE.replace("NAME", f"my_blobs_{workers}"))
    config = _config(path, f"my_blobs_{workers}", offset=2.0, num_workers=workers)
    resolved = resolve_config(config)
    assert resolved.dataset.offset == 2.0  # the user's declared field, checked like ours
    summary = train_and_evaluate(config, str(tmp_path / "run"))
    assert summary["eval/accuracy"] > 0.95
    saved = json.load(open(tmp_path / "run" / "config.json"))
    assert saved["dataset"]["module"] == str(path)


def test_a_missing_module_or_an_unknown_field_of_it_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"config.dataset.module='.*nowhere.py': no such file"):
        resolve_config(_config(tmp_path / "nowhere.py", "my_blobs"))
    with pytest.raises(ConfigError, match=r"config.dataset.module='not_a_module_xyz': no module "
                                          r"named 'not_a_module_xyz'"):
        resolve_config(_config("not_a_module_xyz", "my_blobs"))
    path = tmp_path / "my_blobs_typo.py"
    path.write_text(SOURCE.replace("NAME", "my_blobs_typo"))
    with pytest.raises(ConfigError, match=r"config.dataset.ofset .*did you mean 'offset'"):
        resolve_config(_config(path, "my_blobs_typo"), [("dataset.ofset", Text("1"))])
