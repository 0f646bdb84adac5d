"""eSpeak NG speech synthesis through ctypes, with every utterance a function of its arguments.

eSpeak NG keeps state from one utterance to the next (its pitch-flutter and roughness
counters run on across calls), so the same text spoken twice in one process differs by a few
samples. Here a small server process loads the library once and forks a child per utterance:
every child starts from the same state, so the samples depend only on (text, voice, rate,
pitch, word gap), in any process and on any machine with the same eSpeak NG data. A fork
costs about 1.5 ms; a short utterance takes about 2 ms to synthesise.

Each process that synthesises (the main one, each grain worker) starts its own server on
first use; calls are serialised with a lock, as the library is not re-entrant. Where `fork`
does not exist (Windows) the server synthesises in its own process, and utterances then vary
by a few samples with the order of the calls.

eSpeak NG is GPL-licensed; it comes with the optional package `espeakng-loader` (the extra
`speech`), which only this module and the server it starts import.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import json
import os
import struct
import subprocess
import sys
import threading
from typing import Any, BinaryIO

import numpy as np

ESPEAK_RATE = 22050  # Hz: eSpeak NG's output rate
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH, _WORDGAP = 1, 3, 7  # espeak_PARAMETER values
_HEADER = struct.Struct("<iQ")  # status (0 = samples, 1 = error text), payload bytes
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)


def available() -> bool:
    """Whether eSpeak NG can be loaded (the package `espeakng-loader` is installed)."""
    return importlib.util.find_spec("espeakng_loader") is not None


def data_path() -> str:
    """The folder of eSpeak NG's voice data, inside the `espeakng-loader` package."""
    import espeakng_loader

    return espeakng_loader.get_data_path()


def languages() -> tuple[str, ...]:
    """Every language voice of the installed data, lower-cased file names ('en-us', ...):
    the names `synthesize` takes before a '+'."""
    names = []
    for _, _, files in os.walk(os.path.join(data_path(), "lang")):
        names += [f.lower() for f in files]
    return tuple(sorted(set(names)))


def variants() -> tuple[str, ...]:
    """Every voice variant of the installed data ('m1', 'f2', 'klatt3', ...): the names
    `synthesize` takes after a '+'."""
    return tuple(sorted(os.listdir(os.path.join(data_path(), "voices", "!v"))))


class _Library:
    """The loaded library in synchronous mode; `synth` collects the samples of one utterance."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                     espeakng_loader.get_data_path().encode(), 0)
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"eSpeak NG initialised at {rate} Hz, expected {ESPEAK_RATE}")
        self._chunks: list[bytes] = []
        self._callback = _CALLBACK(self._collect)  # referenced here, or ctypes frees it
        lib.espeak_SetSynthCallback(self._callback)
        self._libc = ctypes.CDLL(None) if os.name == "posix" else None
        self.lib = lib

    def _collect(self, wav: Any, count: int, events: Any) -> int:
        if count > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, 2 * count))
        return 0  # 0 = go on synthesising

    def synth(self, text: str, voice: str, rate: int, pitch: int, word_gap: int) -> bytes:
        """int16 samples at ESPEAK_RATE (as bytes) of `text` spoken by `voice`."""
        self._chunks = []
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice!r}")
        for parameter, value in ((_RATE, rate), (_PITCH, pitch), (_WORDGAP, word_gap)):
            self.lib.espeak_SetParameter(parameter, int(value), 0)
        if self._libc is not None:
            self._libc.srand(1)  # breath noise draws from libc's rand()
        self.lib.espeak_ng_SetRandSeed(1)
        data = text.encode()
        status = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                       None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status} on {text!r}")
        self.lib.espeak_Synchronize()
        return b"".join(self._chunks)


# ------------------------------------------------------------------ the server process
def _write_frame(out: BinaryIO | int, status: int, payload: bytes) -> None:
    frame = _HEADER.pack(status, len(payload)) + payload
    if isinstance(out, int):
        view = memoryview(frame)
        while view:
            view = view[os.write(out, view):]
    else:
        out.write(frame)
        out.flush()


def _read_exactly(read: Any, size: int) -> bytes:
    parts, left = [], size
    while left:
        chunk = read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _answer(lib: _Library, request: dict[str, Any]) -> tuple[int, bytes]:
    try:
        return 0, lib.synth(**request)
    except (ValueError, RuntimeError) as e:
        return 1, str(e).encode()


def _forked(lib: _Library, request: dict[str, Any]) -> tuple[int, bytes]:
    """`request` synthesised in a forked child, from the server's unchanging state."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: synthesise, send, leave without any cleanup
        os.close(read_fd)
        try:
            _write_frame(write_fd, *_answer(lib, request))
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        header = _read_exactly(pipe.read, _HEADER.size)
        status, size = _HEADER.unpack(header) if len(header) == _HEADER.size else (1, 0)
        payload = _read_exactly(pipe.read, size)
    os.waitpid(pid, 0)
    if len(header) < _HEADER.size or len(payload) < size:
        return 1, f"the synthesis process died on {request['text']!r}".encode()
    return status, payload


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """The server: one JSON request per line in, one frame per request out (first a frame
    with the sample rate once the library is ready)."""
    lib = _Library()
    lib.synth("a", "en", 175, 50, 0)  # loads the phoneme data before the children share it
    _write_frame(replies, 0, str(ESPEAK_RATE).encode())
    for line in requests:
        request = json.loads(line)
        _write_frame(replies, *(_forked(lib, request) if hasattr(os, "fork")
                                else _answer(lib, request)))


# ------------------------------------------------------------------ the client
class Synthesizer:
    """This process's connection to a server (started on the first call)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._owner = os.getpid()  # only this process talks to (and stops) the server

    def _start(self) -> subprocess.Popen:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        process = subprocess.Popen([sys.executable, "-m", "dl_arch.data.espeak"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        status, payload = self._reply(process)
        if status != 0 or int(payload) != ESPEAK_RATE:
            raise RuntimeError(f"the eSpeak NG server did not start ({payload!r})")
        return process

    @staticmethod
    def _reply(process: subprocess.Popen) -> tuple[int, bytes]:
        header = _read_exactly(process.stdout.read, _HEADER.size)
        if len(header) < _HEADER.size:
            raise RuntimeError(f"the eSpeak NG server stopped (exit code {process.wait()}); "
                               f"its error is printed above")
        status, size = _HEADER.unpack(header)
        return status, _read_exactly(process.stdout.read, size)

    def __call__(self, text: str, voice: str, rate: int, pitch: int, word_gap: int) -> np.ndarray:
        """int16 samples at ESPEAK_RATE of `text` spoken by `voice` ('en-us+m3': a language
        of `languages()`, optionally '+' a variant of `variants()`) at `rate` words per
        minute, `pitch` 0..100 and `word_gap` pauses of 10 ms between words."""
        request = json.dumps({"text": text, "voice": voice, "rate": int(rate), "pitch": int(pitch),
                              "word_gap": int(word_gap)})
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._process = self._start()
            self._process.stdin.write(request.encode() + b"\n")
            self._process.stdin.flush()
            status, payload = self._reply(self._process)
        if status != 0:
            raise ValueError(payload.decode())
        return np.frombuffer(payload, np.int16)

    def close(self) -> None:
        """Stops the server (it also stops by itself when this process exits)."""
        if os.getpid() != self._owner:
            return
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                self._process.stdin.close()
                self._process.wait()
            self._process = None


_SYNTHESIZER: Synthesizer | None = None
_SYNTHESIZER_LOCK = threading.Lock()


def synthesizer() -> Synthesizer:
    """This process's `Synthesizer` (a forked worker gets a new one, never its parent's)."""
    global _SYNTHESIZER
    with _SYNTHESIZER_LOCK:
        if _SYNTHESIZER is None:
            _SYNTHESIZER = Synthesizer()
            atexit.register(_SYNTHESIZER.close)
        return _SYNTHESIZER


def _forget_after_fork() -> None:
    """In a forked child: the parent's server pipes and locks are not ours to use."""
    global _SYNTHESIZER, _SYNTHESIZER_LOCK
    _SYNTHESIZER, _SYNTHESIZER_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def synthesize(text: str, voice: str, rate: int = 175, pitch: int = 50, word_gap: int = 0
               ) -> np.ndarray:
    """int16 samples at ESPEAK_RATE of `text` (see `Synthesizer.__call__`)."""
    return synthesizer()(text, voice, rate, pitch, word_gap)


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
