"""Image files of a user's data: listing a folder by class, decoding a file, fitting its size.

Shared by the `image_folder` and `coco_json` sources, and read by the image configs'
`:data=PATH` option at config time (`data_classes`: how many classes the model needs), so
the config and the source agree on the classes without the source reaching the model.

Decoding is Pillow's; resizing reuses `dl_arch.data.augment` (the eval resize of TFDS
images), so a user's folder and a TFDS split of the same pictures give the same pixels.
"""

from __future__ import annotations

import os

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.data.augment import center_resize, resize

# What Pillow decodes; files with other extensions (a README, .DS_Store) are not examples.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
RESIZE_MODES = ("crop", "stretch")  # shorter side then the central square | both sides


def is_image(name: str) -> bool:
    """Whether a file name is an image this project reads (by extension; hidden files not)."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _images_under(folder: str) -> list[str]:
    """Every image file under `folder` (sub-folders included), in sorted path order."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if is_image(f)]
    return found


def list_folder(folder: str, field: str) -> dict[str, list[str]]:
    """Class name -> its image files, for a folder with one sub-folder per class (sorted by
    name); a flat folder of images gives {'': files}. Every way the layout can be wrong is a
    one-line error naming `config.dataset.<field>`."""
    where = f"config.dataset.{field}={folder!r}"
    if not os.path.isdir(folder):
        raise ConfigError(f"{where} is not a folder; give a folder with one sub-folder of "
                          f"images per class (or, for generative models, a folder of images)")
    entries = sorted(e for e in os.listdir(folder) if not e.startswith("."))
    if not entries:
        raise ConfigError(f"{where} is empty; put one sub-folder of images per class in it")
    subdirs = [e for e in entries if os.path.isdir(os.path.join(folder, e))]
    loose = [e for e in entries if is_image(e) and not os.path.isdir(os.path.join(folder, e))]
    if not subdirs:
        if not loose:
            raise ConfigError(f"{where} holds no images (read: "
                              f"{', '.join(IMAGE_EXTENSIONS)}; found e.g. {entries[0]!r})")
        return {"": [os.path.join(folder, e) for e in loose]}
    if loose:
        raise ConfigError(f"{where} holds both class sub-folders ({', '.join(subdirs[:3])}) and "
                          f"{len(loose)} loose image(s) (e.g. {loose[0]!r}); move each image "
                          f"into its class's folder")
    classes = {name: _images_under(os.path.join(folder, name)) for name in subdirs}
    empty = [name for name, files in classes.items() if not files]
    if empty:
        raise ConfigError(f"{where}: class folder(s) {', '.join(map(repr, empty))} hold no "
                          f"images ({', '.join(IMAGE_EXTENSIONS)}); fill or remove them")
    return classes


def folder_classes(folder: str, field: str = "path") -> tuple[str, ...]:
    """The class names of an image folder (its sorted sub-folder names; () when flat)."""
    return tuple(name for name in list_folder(folder, field) if name)


def data_classes(path: str) -> tuple[str, ...] | None:
    """Config time: the class names a user's data holds, so the model gets as many outputs.

    A folder (or `hf:<local folder>`, which datasets' imagefolder reads with the same sorted
    classes): its class sub-folders (() for a flat folder of images); a COCO JSON: its
    category names (in category id order); an .npz holding a `label` array, or an .npy with
    `label.npy` beside it: '0'..'largest label'; anything else (a hub name, arrays without
    labels, '' for no data): None, and the config's own count stands.
    """
    if path.startswith("hf:"):
        return folder_classes(path[3:]) if os.path.isdir(path[3:]) else None
    if not path:
        return None
    if not os.path.exists(path):
        raise ConfigError(f"data={path!r}: no such file or folder")
    if os.path.isdir(path):
        return folder_classes(path)
    ext = os.path.splitext(path)[1].lower()
    labels = None
    if ext == ".json":
        from dl_arch.data.sources.coco_json import coco_categories

        return tuple(name for _, name in coco_categories(path, "path"))
    if ext == ".npz":
        with np.load(path) as arrays:
            labels = arrays["label"] if "label" in arrays.files else None
    elif ext == ".npy" and os.path.isfile(os.path.join(os.path.dirname(path), "label.npy")):
        labels = np.load(os.path.join(os.path.dirname(path), "label.npy"), mmap_mode="r")
    if labels is None or not labels.size:
        return None
    return tuple(str(k) for k in range(int(np.max(labels)) + 1))


def read_image(file: str, channels: int, where: str) -> np.ndarray:
    """The image in `file` as float32 HWC in [0, 1] with `channels` (1: greyscale, 3: RGB;
    every file is converted); an unreadable file is a one-line error starting with `where`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ConfigError(f"{where} ({file}) is not a readable image: {e}; fix or remove "
                          f"the file") from None
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return pixels.astype(np.float32) / np.float32(255.0)


def image_size_of(file: str, where: str) -> tuple[int, int]:
    """(height, width) of an image file from its header only (no pixels decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ConfigError(f"{where} ({file}) is not a readable image: {e}; fix or remove "
                          f"the file") from None
    return height, width


def fit_image(image_HWC: np.ndarray, size: int, mode: str) -> np.ndarray:
    """`image_HWC` made size x size: 'crop' resizes the shorter side to `size` and keeps the
    central square (the aspect ratio survives), 'stretch' resizes both sides (the whole
    picture survives); size 0 keeps the image as it is."""
    if not size:
        return image_HWC
    if mode == "crop":
        return center_resize(image_HWC, size, 1.0)
    return resize(image_HWC, size, size)
