"""`mask_folder`: a user's images with a parallel folder of PNG masks, for segmentation.

    my_data/
      images/  0001.jpg  0002.png  street/0003.jpg ...
      masks/   0001.png  0002.png  street/0003.png ...   (same path and stem, always .png)

`path` is the image folder (read as `image_folder` reads images: Pillow, converted to
`channels`); `mask_path` the mask folder, by default the folder `masks` beside `path`
(`my_data/images` -> `my_data/masks`; `eval_path`'s masks likewise beside it unless
`eval_mask_path` is set). A mask holds one class index per pixel: a single-channel PNG of
mode L, or P (palette PNGs as VOC ships them: the indices, not the colours, are read);
255 = ignore (object borders). Examples are `image` float32 HWC in [0, 1] and `mask` int32
[H, W], at the files' size: the segmentation task's preprocessing resizes both together.

When the checks run (start-up reads folder listings and one image header, never pixels):
at construction, images without masks and masks without images (by relative path and
stem), and an empty folder; as each example is read, its mask's values (each < num_classes
or 255), the mask's size against its image's, and, with image_size 0, the image's size
against the first one's. Each is one line naming the file.
"""

from __future__ import annotations

import os
from typing import Any

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.image_files import IMAGE_EXTENSIONS, image_size_of, is_image, read_image
from dl_arch.data.mask_augment import MASK_AUGMENT_FIELDS
from dl_arch.data.masks import check_mask_values, read_mask
from dl_arch.data.user_files import USER_FILE_FIELDS, path_of, require, user_split
from dl_arch.registry import register_dataset

MASKS_FOLDER = "masks"  # the default mask folder's name, beside the image folder
_SHOWN = 3  # mismatched names listed in an error


def default_mask_folder(image_folder: str) -> str:
    """The folder `masks` beside `image_folder` (data/images -> data/masks)."""
    return os.path.join(os.path.dirname(os.path.normpath(image_folder)), MASKS_FOLDER)


def _by_stem(folder: str, where: str, skip: str | None = None) -> dict[str, str]:
    """Relative path without extension -> file, for every image under `folder` (sub-folders
    included, `skip` left out); two files of one stem are an error."""
    found: dict[str, str] = {}
    skip = os.path.realpath(skip) if skip else None
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and os.path.realpath(os.path.join(root, d)) != skip)
        for name in sorted(files):
            if not is_image(name):
                continue
            file = os.path.join(root, name)
            stem = os.path.splitext(os.path.relpath(file, folder))[0]
            if stem in found:
                raise ConfigError(f"{where}: {os.path.relpath(found[stem], folder)!r} and "
                                  f"{os.path.relpath(file, folder)!r} share one name; keep one "
                                  f"image per name, so each has one mask")
            found[stem] = file
    return found


def _unmatched(names: list[str], count_note: str) -> str:
    """'N <count_note> ('a', 'b', 'c', ...)': the count and the first few names."""
    shown = ", ".join(repr(n) for n in names[:_SHOWN]) + (", ..." if len(names) > _SHOWN else "")
    return f"{len(names)} {count_note} ({shown})"


class MaskFolder:
    """Every (image, mask) pair of an image folder and its mask folder; decoded on each read."""

    def __init__(self, image_folder: str, image_field: str, mask_folder: str, mask_field: str,
                 num_classes: int, channels: int, image_size: int):
        image_where = f"config.dataset.{image_field}={image_folder!r}"
        mask_where = f"config.dataset.{mask_field}={mask_folder!r}"
        if not os.path.isdir(image_folder):
            raise ConfigError(f"{image_where} is not a folder; give the folder of your images")
        if not os.path.isdir(mask_folder):
            raise ConfigError(f"{mask_where} is not a folder; give the folder of the masks of "
                              f"{image_folder!r} (default: a folder '{MASKS_FOLDER}' beside it)")
        images = _by_stem(image_folder, image_where, skip=mask_folder)
        masks = _by_stem(mask_folder, mask_where)
        if not images:
            raise ConfigError(f"{image_where} holds no images (read: {', '.join(IMAGE_EXTENSIONS)})")
        lossy = [os.path.relpath(f, mask_folder) for f in masks.values()
                 if not f.lower().endswith(".png")]
        if lossy:
            raise ConfigError(f"{mask_where} holds {_unmatched(lossy, 'mask(s) not saved as PNG')}; "
                              f"save masks as PNG (lossless), or compression changes the classes")
        no_mask = sorted(set(images) - set(masks))
        if no_mask:
            raise ConfigError(f"{image_where}: {_unmatched(no_mask, 'image(s) have no mask')} in "
                              f"{mask_where}; give each image a mask <same name>.png")
        no_image = sorted(set(masks) - set(images))
        if no_image:
            raise ConfigError(f"{mask_where}: {_unmatched(no_image, 'mask(s) have no image')} in "
                              f"{image_where}; remove them or add their images")
        stems = sorted(images)
        self.image_files = [images[s] for s in stems]
        self.mask_files = [masks[s] for s in stems]
        self.where = image_where
        self.num_classes, self.channels = int(num_classes), int(channels)
        self.image_size = int(image_size)
        # without a resize every image must share one size: the first file's (a header read)
        self._first_size = (None if self.image_size else
                            image_size_of(self.image_files[0], f"{image_where}: image 0"))

    def __len__(self) -> int:
        return len(self.image_files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_file, mask_file = self.image_files[index], self.mask_files[index]
        image = read_image(image_file, self.channels, f"{self.where}: image {index}")
        mask = read_mask(mask_file, f"{self.where}: the mask of image {index}")
        if mask.shape != image.shape[:2]:
            raise ConfigError(f"{self.where}: image {index} ({image_file}) is "
                              f"{image.shape[0]}x{image.shape[1]} but its mask ({mask_file}) is "
                              f"{mask.shape[0]}x{mask.shape[1]}; a mask must have its image's size")
        if self._first_size is not None and image.shape[:2] != self._first_size:
            h, w = self._first_size
            raise ConfigError(f"{self.where}: image {index} ({image_file}) is "
                              f"{image.shape[0]}x{image.shape[1]} but image 0 "
                              f"({self.image_files[0]}) is {h}x{w}; set config.dataset.image_size "
                              f"to resize every image and mask to one square size")
        check_mask_values(mask, self.num_classes, f"{self.where}: the mask {mask_file}")
        return {"image": image, "mask": mask}


def mask_folder_of(dataset_config: Any, split: str) -> tuple[str, str]:
    """(mask folder, its field) for `split`: `eval_mask_path` or the `masks` beside
    `eval_path` for a separate eval folder, else `mask_path` or the `masks` beside `path`."""
    c = dataset_config
    if c.eval_path and split != c.train_split:
        return c.eval_mask_path or default_mask_folder(c.eval_path), "eval_mask_path"
    return c.mask_path or default_mask_folder(c.path), "mask_path"


@register_dataset("mask_folder", fields={
    **USER_FILE_FIELDS,
    "mask_path": Field("", "folder of path's masks: PNGs of class indices named as the images "
                           "('': the folder 'masks' beside path)"),
    "eval_mask_path": Field("", "folder of eval_path's masks ('': the folder 'masks' beside "
                                "eval_path)"),
    "num_classes": Field(2, "classes in the masks: values 0..num_classes-1, 255 = ignore (a "
                            "larger value is an error)", low=1, high=255),
    "image_size": MASK_AUGMENT_FIELDS["image_size"],
    "channels": Field(3, "1 = greyscale, 3 = RGB (every image is converted)", choices=(1, 3)),
})
def mask_folder(dataset_config: Any, split: str, seed: int) -> Any:
    """A folder of images and one of their masks (module doc), split into train and eval."""
    c = dataset_config
    if c.class_names is not None and len(c.class_names) != c.num_classes:
        raise ConfigError(f"config.dataset.class_names has {len(c.class_names)} names but "
                          f"config.dataset.num_classes={c.num_classes}; give one name per class")
    require(c.path, "path", "folder")
    image_field = "eval_path" if c.eval_path and split != c.train_split else "path"
    masks, mask_field = mask_folder_of(c, split)
    reader = MaskFolder(path_of(c, split), image_field, masks, mask_field, c.num_classes,
                        c.channels, c.image_size)
    return user_split(reader, c, split)


def count_mask_classes(image_folder: str) -> int:
    """Classes of a user's mask folder (the one beside `image_folder`): its largest value
    other than IGNORE_LABEL, plus one; for a config's `:data=PATH` option, so the model's
    outputs follow the data (reads every mask once, at config time)."""
    from dl_arch.data.masks import IGNORE_LABEL

    folder = default_mask_folder(image_folder)
    where = f"data={image_folder!r}: its mask folder {folder!r}"
    if not os.path.isdir(folder):
        raise ConfigError(f"{where} does not exist; put the masks (PNGs of class indices, named "
                          f"as the images) in a folder '{MASKS_FOLDER}' beside the images")
    top = -1
    for file in _by_stem(folder, where).values():
        values = read_mask(file, where)
        values = values[values != IGNORE_LABEL]
        if values.size:
            top = max(top, int(values.max()))
    if top < 1:
        raise ConfigError(f"{where} holds {top + 1} class(es); a segmentation needs at least "
                          f"2 (background and one more)")
    return top + 1
