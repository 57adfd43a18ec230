"""Which installed runtime serves a model artifact that has no
model-settings.json: `core start model.joblib`, or a folder holding one.

A runtime declares the file names it serves (`Runtime.artifacts`, globs) and,
optionally, a `Runtime.recognise(path)` that looks at the file's first bytes.
For one file:

1. the candidates are the runtimes with a pattern matching the file's name;
2. a candidate with `recognise` keeps its place only if it returns True;
3. candidates that recognised the file rank above those that match by name
   alone (a LightGBM estimator in `model.joblib` goes to the runtime that
   looked inside, not to the generic pickle runtime);
4. one candidate left serves the file; several are an ambiguity, reported
   with the fix (a model-settings.json, or `--implementation`).

Nothing here unpickles or imports a framework: `pickled_class` reads the
pickle's opcodes without running them."""

from __future__ import annotations

import bz2
import fnmatch
import gzip
import io
import logging
import lzma
import pickletools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..plugins.hookspecs import Runtime
from ..settings import MODEL_SETTINGS_FILENAME, SETTINGS_FILENAME

logger = logging.getLogger(__name__)

# Never artifacts: the server's and the models' own settings files.
_SETTINGS_FILES = {SETTINGS_FILENAME, MODEL_SETTINGS_FILENAME}
# How much of a file `recognise` functions and `pickled_class` look at.
HEAD_SIZE = 64 * 1024


@dataclass(frozen=True)
class Detection:
    """The runtimes that can serve one file, best first."""

    path: Path
    runtimes: tuple[Runtime, ...]

    @property
    def ambiguous(self) -> bool:
        return len(self.runtimes) > 1


def matches(runtime: Runtime, name: str) -> bool:
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in runtime.artifacts)


def detect(path: Path, runtimes: Sequence[Runtime]) -> Detection:
    """The runtimes that serve the file at `path` (rules in the module's docstring)."""
    if path.name in _SETTINGS_FILES:
        return Detection(path, ())
    by_name = [runtime for runtime in runtimes if matches(runtime, path.name)]
    recognised = [
        runtime for runtime in by_name if runtime.recognise is not None and _recognises(runtime, path)
    ]
    if recognised:
        return Detection(path, tuple(recognised))
    return Detection(path, tuple(runtime for runtime in by_name if runtime.recognise is None))


def _recognises(runtime: Runtime, path: Path) -> bool:
    assert runtime.recognise is not None
    try:
        return bool(runtime.recognise(path))
    except Exception as error:  # a plugin's bug must not stop the others
        logger.warning(
            "runtime '%s' could not inspect %s: %s: %s", runtime.alias, path, type(error).__name__, error
        )
        return False


def files_in(folder: Path) -> list[Path]:
    """The files directly in `folder` that could be artifacts: not hidden, not settings files."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [
        entry
        for entry in entries
        if entry.is_file() and not entry.name.startswith(".") and entry.name not in _SETTINGS_FILES
    ]


def detect_in_folder(folder: Path, runtimes: Sequence[Runtime]) -> list[Detection]:
    """The files directly in `folder` that some runtime serves."""
    detections = [detect(path, runtimes) for path in files_in(folder)]
    return [detection for detection in detections if detection.runtimes]


def describe_runtimes(runtimes: Sequence[Runtime]) -> str:
    """`sklearn (*.joblib, *.pkl), xgboost (...)`, for error messages."""
    ordered = sorted(runtimes, key=lambda runtime: runtime.alias)
    described = [f"{r.alias} ({', '.join(r.artifacts)})" for r in ordered if r.artifacts]
    return ", ".join(described) or "none that serve artifact files"


def read_head(path: Path, size: int = HEAD_SIZE) -> bytes:
    """The first `size` bytes of a file (fewer if it is shorter)."""
    with open(path, "rb") as file:
        return file.read(size)


# joblib's compressed files start with their compressor's magic number.
_ZLIB, _GZIP, _BZ2, _XZ, _LZMA = b"\x78", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x5d\x00\x00"
_STRING_OPCODES = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}
# What a pickle may hold before it names the class of its outer object.
_PREAMBLE_OPCODES = {"PROTO", "FRAME", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"}
# Globals that wrap the object rather than name its class (old pickle protocols).
_WRAPPERS = {"copyreg", "copy_reg"}


def pickled_class(path: Path) -> str | None:
    """`module.Class` of the object pickled (with pickle or joblib, compressed
    or not) in the file at `path`, read from the pickle's first opcodes
    without unpickling; None when the file is not a binary pickle (protocol 2
    or later) of a class instance (a dict or a list of models, for one).
    For plugins' `recognise` functions: `pickled_class(p).startswith("lightgbm.")`."""
    try:
        head = _decompressed_head(read_head(path))
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return None
    if not head.startswith(b"\x80"):  # PROTO: protocol 2 and later (joblib's and pickle's defaults)
        return None
    strings: list[str] = []
    try:
        for opcode, argument, _ in pickletools.genops(io.BytesIO(head)):
            if opcode.name in _PREAMBLE_OPCODES:
                continue
            if opcode.name in _STRING_OPCODES:
                strings.append(str(argument))
                continue
            if opcode.name == "GLOBAL":
                module, _, name = str(argument).partition(" ")
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                module, name = strings[-2], strings[-1]
            else:
                return None  # the outer object is built some other way: not a class instance
            if module not in _WRAPPERS:
                return f"{module}.{name}"
            strings.clear()
    except (ValueError, EOFError):  # the head ends inside an opcode, or is no pickle
        return None
    return None


def _decompressed_head(head: bytes) -> bytes:
    if head.startswith(_GZIP):
        return gzip.GzipFile(fileobj=io.BytesIO(head)).read1(HEAD_SIZE)
    if head.startswith(_BZ2):
        return bz2.BZ2Decompressor().decompress(head, HEAD_SIZE)
    if head.startswith(_XZ):
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(head, HEAD_SIZE)
    if head.startswith(_LZMA):
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(head, HEAD_SIZE)
    if head.startswith(_ZLIB):
        return zlib.decompressobj().decompress(head, HEAD_SIZE)
    return head
