"""Unpacking an environment tarball safely: members that are absolute,
leave the folder, link out of it or are special files are refused, naming
the member. A venv's interpreter links, which point to the packing
machine's Python, are left out and reported, for the caller to make anew."""

from __future__ import annotations

import copy
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path, PureWindowsPath
from typing import BinaryIO

from ..errors import CoreError, ModelLoadError

# Python >= 3.10.12 / 3.11.4 have the stdlib's extraction filters; before
# them, the same normalisation is done here (see _sanitized).
_STDLIB_FILTER = hasattr(tarfile, "data_filter")
# What a venv names its interpreters: python, python3, python3.11, python3.13t.
_INTERPRETER_NAME = re.compile(r"python(\d+(\.\d+)?t?)?(\.exe)?")


def extract(tarball: BinaryIO, destination: Path, what: str) -> list[str]:
    """Unpack `tarball` into `destination`, refusing unsafe members; the venv
    interpreter links left out (to be made anew), as archive names."""
    interpreter_links: list[str] = []
    try:
        tarball.seek(0)
        with tarfile.open(fileobj=tarball, mode="r:*") as archive:
            members = _checked_members(archive, destination, interpreter_links, what)
            if _STDLIB_FILTER:
                archive.extractall(destination, members=members, filter="data")
            else:  # pragma: no cover  (Python < 3.10.12 / 3.11.4; tested by patching _STDLIB_FILTER)
                archive.extractall(destination, members=(_sanitized(member) for member in members))
    except CoreError:
        raise
    except Exception as error:  # tarfile, gzip, bz2, lzma and OS errors alike
        raise ModelLoadError(f"{what}: cannot unpack it: {error}") from None
    return interpreter_links


def _checked_members(
    archive: tarfile.TarFile, destination: Path, interpreter_links: list[str], what: str
) -> Iterator[tarfile.TarInfo]:
    """The archive's members, each checked just before it is extracted (so
    against the links unpacked before it), the first unsafe one raising."""
    root = os.path.realpath(destination)
    for member in archive:
        name = member.name
        if name.startswith(("/", "\\")) or os.path.isabs(name) or PureWindowsPath(name).drive:
            raise ModelLoadError(f"{what}: member '{name}' has an absolute path")
        parts = [part for part in re.split(r"[/\\]", name) if part not in ("", ".")]
        if ".." in parts:
            raise ModelLoadError(f"{what}: member '{name}' leaves the environment folder ('..')")
        if not parts:
            continue  # the archive's own top folder, "./"
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise ModelLoadError(
                f"{what}: member '{name}' is a device, pipe or other special file; "
                "an environment holds files, folders and links only"
            )
        target = os.path.join(root, name)
        if not _inside(root, os.path.realpath(target)):
            raise ModelLoadError(f"{what}: member '{name}' leaves the environment folder through a link")
        link = member.linkname
        if member.issym():
            outside = os.path.isabs(link) or PureWindowsPath(link).drive or link.startswith(("/", "\\"))
            if not outside:
                outside = not _inside(root, os.path.realpath(os.path.join(os.path.dirname(target), link)))
            if outside and _is_interpreter_link(parts):
                interpreter_links.append("/".join(parts))
                continue
            if outside:
                raise ModelLoadError(
                    f"{what}: member '{name}' is a symbolic link to '{link}', outside the environment folder"
                )
        elif member.islnk():
            source = os.path.join(root, link)
            if os.path.isabs(link) or not _inside(root, os.path.realpath(source)):
                raise ModelLoadError(
                    f"{what}: member '{name}' is a hard link to '{link}', outside the environment folder"
                )
            if os.path.islink(source) or not os.path.isfile(source):
                raise ModelLoadError(
                    f"{what}: member '{name}' is a hard link to '{link}', not a file unpacked before it"
                )
        yield member


def _sanitized(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """What tarfile.data_filter makes of a member (checked already): no
    owner from the archive, no setuid/setgid/sticky bits, no group or other
    write, the owner able to read and write."""
    member = copy.copy(member)
    member.uid, member.gid = (os.getuid(), os.getgid()) if hasattr(os, "getuid") else (0, 0)
    member.uname = member.gname = ""
    if member.isdir():
        member.mode = 0o755
    elif member.isreg() or member.islnk():
        mode = (member.mode & 0o755) | 0o600
        member.mode = mode if mode & 0o100 else mode & ~0o011
    return member


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _is_interpreter_link(parts: list[str]) -> bool:
    return len(parts) == 2 and parts[0] in ("bin", "Scripts") and bool(_INTERPRETER_NAME.fullmatch(parts[1]))


def check_links_stay_inside(root: Path, what: str) -> None:
    """Every link, once all are unpacked, still resolves inside the folder
    (a later member may re-point a link that an earlier one goes through)."""
    real_root = os.path.realpath(root)
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = os.path.join(folder, name)
            if os.path.islink(path) and not _inside(real_root, os.path.realpath(path)):
                member = os.path.relpath(path, root).replace(os.sep, "/")
                raise ModelLoadError(
                    f"{what}: member '{member}' is a symbolic link that ends outside the environment folder"
                )
