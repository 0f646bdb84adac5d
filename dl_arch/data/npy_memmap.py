"""`.npy` and `.npz` arrays opened as memory maps: a file larger than memory can be read.

`np.load(mmap_mode="r")` maps a `.npy` file but reads every member of a `.npz` whole. An
`.npz` written by `np.savez` is a zip whose members are stored uncompressed, so each member
is a `.npy` file at a known offset inside the zip: we read its header there and map the
array in place. A member of `np.savez_compressed` cannot be mapped: its header is read
from the compressed stream (so its dtype and shape are known cheaply) and the array is
decompressed into memory on its first read.

Every problem with a file is a one-line `ConfigError` naming the file and `field` (the
config field that gave its path).
"""

from __future__ import annotations

import dataclasses
import os
import struct
import zipfile
from typing import IO, Any

import numpy as np

from dl_arch.config.errors import ConfigError

_LOCAL_HEADER = b"PK\x03\x04"  # signature of a zip member's local file header (30 bytes)


@dataclasses.dataclass(frozen=True)
class ArrayInfo:
    """Where one array lies and what it holds, known without reading its data."""

    file: str  # the .npy or .npz file
    member: str  # the zip member ('' for a .npy file)
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    offset: int  # byte offset of the data in `file` (-1: a compressed member)

    @property
    def mappable(self) -> bool:
        return self.offset >= 0

    def open(self) -> np.ndarray:
        """The array: a read-only memory map, or the whole array when it is compressed."""
        if not self.mappable:
            with np.load(self.file, allow_pickle=False) as npz:
                return npz[self.member[:-len(".npy")]]
        if 0 in self.shape:
            return np.empty(self.shape, self.dtype)  # mmap cannot map zero bytes
        return np.memmap(self.file, dtype=self.dtype, mode="r", offset=self.offset,
                         shape=self.shape, order="F" if self.fortran_order else "C")


def _read_header(f: IO[bytes], file: str, field: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) from the .npy header at the stream's position."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version in ((2, 0), (3, 0)):  # 3.0 differs only in allowing utf-8 field names
            return np.lib.format.read_array_header_2_0(f)
    except ValueError as e:
        raise ConfigError(f"config.dataset.{field}={file!r} is not a numpy array file "
                          f"({str(e).splitlines()[0]}); write it with np.save / np.savez") from None
    raise ConfigError(f"config.dataset.{field}={file!r}: unsupported .npy format version "
                      f"{version}; write it again with np.save / np.savez")


def _check_file(path: str, field: str) -> None:
    if os.path.isdir(path):
        raise ConfigError(f"config.dataset.{field}={path!r} is a folder; give a .npz or .npy file")
    if os.path.getsize(path) == 0:
        raise ConfigError(f"config.dataset.{field}={path!r} is an empty file; write your arrays "
                          f"with np.savez (or np.save)")


def npy_info(path: str, field: str = "path") -> ArrayInfo:
    """The header of the `.npy` file `path`."""
    _check_file(path, field)
    with open(path, "rb") as f:
        shape, fortran, dtype = _read_header(f, path, field)
        return ArrayInfo(path, "", dtype, tuple(shape), fortran, f.tell())


def npz_infos(path: str, field: str = "path") -> dict[str, ArrayInfo]:
    """The headers of every array of the `.npz` file `path`, by name, in file order."""
    _check_file(path, field)
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"config.dataset.{field}={path!r} is not a .npz file (a zip of arrays, "
                          f"as np.savez writes)")
    infos = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
        for member in zf.infolist():
            if not member.filename.endswith(".npy"):
                continue
            name = member.filename[:-len(".npy")]
            if member.compress_type == zipfile.ZIP_STORED:
                infos[name] = _stored_member(raw, path, member, field)
            else:
                with zf.open(member) as f:
                    shape, fortran, dtype = _read_header(f, path, field)
                infos[name] = ArrayInfo(path, member.filename, dtype, tuple(shape), fortran, -1)
    if not infos:
        raise ConfigError(f"config.dataset.{field}={path!r} holds no arrays; write them with "
                          f"np.savez(path, name=array, ...)")
    return infos


def _stored_member(raw: IO[bytes], path: str, member: zipfile.ZipInfo, field: str) -> ArrayInfo:
    """An uncompressed member: its data starts after the local header (30 bytes, the name and
    an extra field whose length may differ from the central directory's) and the .npy header."""
    raw.seek(member.header_offset)
    local = raw.read(30)
    if len(local) < 30 or local[:4] != _LOCAL_HEADER:
        raise ConfigError(f"config.dataset.{field}={path!r}: member {member.filename!r} has a "
                          f"damaged zip header; write the file again with np.savez")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    start = member.header_offset + 30 + name_len + extra_len
    raw.seek(start)
    shape, fortran, dtype = _read_header(raw, path, field)
    offset = raw.tell()
    expected = offset - start + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if not dtype.hasobject and member.file_size != expected:
        raise ConfigError(f"config.dataset.{field}={path!r}: member {member.filename!r} holds "
                          f"{member.file_size} bytes, its header says {expected}; the file is "
                          f"truncated or damaged")
    return ArrayInfo(path, member.filename, dtype, tuple(shape), fortran, offset)


def array_infos(path: str, field: str = "path") -> dict[str, ArrayInfo]:
    """The arrays of a `.npz` (by member name) or the one array of a `.npy` (by file stem)."""
    if path.lower().endswith(".npy"):
        return {os.path.splitext(os.path.basename(path))[0]: npy_info(path, field)}
    return npz_infos(path, field)


def describe(infos: dict[str, Any]) -> str:
    """'a (100, 3) float32, b (100,) int64' for error messages."""
    return ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in infos.items())
