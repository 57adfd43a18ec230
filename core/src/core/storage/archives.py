"""Unpacks a downloaded `.tar`, `.tar.gz` / `.tgz` or `.zip` into a folder,
refusing any entry that would land outside it: `..`, absolute paths, and
links (tar's symbolic and hard links, zip's symlinks) that point out."""

from __future__ import annotations

import posixpath
import stat
import tarfile
import zipfile
from pathlib import Path

from ..errors import ModelLoadError

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def unpack(archive: Path, folder: Path, uri: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.lower().endswith(".zip"):
            _unzip(archive, folder, uri)
        else:
            _untar(archive, folder, uri)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
        raise ModelLoadError(f"{uri}: not a readable archive: {error}") from None


def _untar(archive: Path, folder: Path, uri: str) -> None:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            _check_name(member.name, uri)
            if member.issym() or member.islnk():
                base = posixpath.dirname(member.name) if member.issym() else ""
                _check_name(posixpath.join(base, member.linkname), uri, what=f"link {member.name} ->")
            elif not (member.isfile() or member.isdir()):
                raise ModelLoadError(f"{uri}: archive entry {member.name!r} is a device or pipe")
        # The standard library's own guard too, where it has one (3.10.12+).
        if hasattr(tarfile, "data_filter"):
            tar.extractall(folder, members=members, filter="data")
        else:  # pragma: no cover
            tar.extractall(folder, members=members)


def _unzip(archive: Path, folder: Path, uri: str) -> None:
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            _check_name(info.filename, uri)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ModelLoadError(f"{uri}: archive entry {info.filename!r} is a symbolic link")
        zipped.extractall(folder)


def _check_name(name: str, uri: str, what: str = "archive entry") -> None:
    normal = posixpath.normpath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or normal.split("/")[0] == "..":
        raise ModelLoadError(f"{uri}: {what} {name!r} leaves the model folder")
