"""`image_folder`: a user's folder of images, one sub-folder per class, as a labelled source.

    my_images/
      cat/  0001.png  0002.jpg ...
      dog/  a.png ...

Labels are the positions of the folder names in `config.dataset.class_names` (the image
configs' `:data=PATH` option sets it, with the model's `num_classes`, from a listing of the
folder), else in the sorted sub-folder names of `path`, so a separate eval folder
(`eval_path`) missing a class keeps the same labels. A flat folder of images (no
sub-folders) is one unlabelled class, label 0, for generative models. Every image is
decoded with Pillow, converted to `channels` and fitted to `image_size` (see
`dl_arch.data.image_files`); the source exposes `class_names` so predictions can be named.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.image_files import (
    RESIZE_MODES,
    fit_image,
    folder_classes,
    image_size_of,
    list_folder,
    read_image,
)
from dl_arch.data.user_files import USER_FILE_FIELDS, check_class_count, path_of, require, user_split
from dl_arch.registry import register_dataset


class ImageFolder:
    """Every image of one folder with its label; random access, decoded on each read."""

    def __init__(self, folder: str, field: str, class_names: tuple[str, ...] | None,
                 image_size: int, resize_mode: str, channels: int):
        listing = list_folder(folder, field)
        where = f"config.dataset.{field}={folder!r}"
        names = tuple(class_names) if class_names is not None else tuple(n for n in listing if n)
        self.class_names = names
        self.files: list[str] = []
        labels: list[int] = []
        for name, files in listing.items():
            if name and name not in names:
                raise ConfigError(f"{where}: class folder {name!r} is not among the classes "
                                  f"({', '.join(names)}) taken from config.dataset.class_names "
                                  f"or the train folder; rename or remove it")
            if not name and names:
                raise ConfigError(f"{where} holds no class sub-folders, but the data has "
                                  f"{len(names)} classes ({', '.join(names[:5])}); give each "
                                  f"class a sub-folder")
            self.files += files
            labels += [names.index(name) if name else 0] * len(files)
        self.labels = np.asarray(labels, np.int32)
        self.where, self.channels = where, int(channels)
        self.image_size, self.resize_mode = int(image_size), resize_mode
        if not self.image_size:
            self._check_one_size()

    def _check_one_size(self) -> None:
        """Without a resize every image must have the first one's size (headers only)."""
        first = image_size_of(self.files[0], f"{self.where}: image 0")
        for i, file in enumerate(self.files[1:], start=1):
            size = image_size_of(file, f"{self.where}: image {i}")
            if size != first:
                raise ConfigError(
                    f"{self.where}: image {i} ({file}) is {size[0]}x{size[1]} but image 0 "
                    f"({self.files[0]}) is {first[0]}x{first[1]}; set config.dataset.image_size "
                    f"to resize every image to one square size")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = read_image(self.files[index], self.channels, f"{self.where}: image {index}")
        return {"image": fit_image(image, self.image_size, self.resize_mode),
                "label": np.int32(self.labels[index])}


def _class_names(dataset_config: Any) -> tuple[str, ...]:
    """The run's classes: `class_names` when given, else the train folder's sub-folders."""
    if dataset_config.class_names:
        return tuple(dataset_config.class_names)
    return folder_classes(require(dataset_config.path, "path"), "path")


@register_dataset("image_folder", fields={
    **USER_FILE_FIELDS,
    "image_size": Field(0, "side of the square images the model sees (0: keep the files' "
                           "size, which must then agree)", low=0),
    "resize_mode": Field("crop", "how image_size is reached: crop (shorter side, then the "
                                 "central square) | stretch (both sides)",
                         choices=RESIZE_MODES),
    "channels": Field(3, "1 = greyscale, 3 = RGB (every file is converted)", choices=(1, 3)),
    "num_classes": Field(0, "classes the model was built for: more class folders is an error "
                            "(0: no check)", low=0),
})
def image_folder(dataset_config: Any, split: str, seed: int) -> Any:
    """A folder of images by class (module doc), split into train and eval."""
    c = dataset_config
    names = _class_names(c)
    check_class_count(c, names, "classes")
    field = "eval_path" if c.eval_path and split != c.train_split else "path"
    reader = ImageFolder(path_of(c, split), field, names, c.image_size, c.resize_mode,
                         c.channels)
    return user_split(reader, c, split)
