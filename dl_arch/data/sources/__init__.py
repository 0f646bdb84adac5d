"""Random-access data sources, registered by name (`config.dataset.name`).

A source is built by `factory(dataset_config, split: str, seed: int)` and has `__len__`
and `__getitem__(index) -> dict[str, np.ndarray]`. Standard keys: `image` (float32 HWC in
[0, 1]), `label` (int32), `inputs`/`targets` (arrays), `boxes`/`box_labels` (detection),
`mask` (int32 HW class indices, 255 = ignore: segmentation).
`tfds:<name>` is handled by `dl_arch.data.tfds_source`; everything else is registered
here with `@register_dataset("name", fields={...})`, declaring every `config.dataset` field
the factory reads (the factory gets a resolved section and reads them as attributes).
"""
