#!/usr/bin/env python3
"""Per-package releases: check one, tag it, test plugins against core's history.

    python3 scripts/release.py list                  # packages, versions, tags
    python3 scripts/release.py check core-sklearn    # may core-sklearn be released?
    python3 scripts/release.py tag core-sklearn      # check, then tag core-sklearn-vX.Y.Z
    python3 scripts/release.py compat core-sklearn   # against its lowest and highest core
    python3 scripts/release.py resolve-tag core-sklearn-v0.2.0   # for CI: the tag's package

`check` refuses a release whose CHANGELOG.md has no dated entry for the
version, whose tag is taken, whose `core` range excludes this checkout's
core, or whose wheel does not install into an empty venv and serve the
package's tiny model. Needs Python 3.11+ (or tomli), `packaging` and
`hatch`; the dev environment (python3 dev.py) has them. See docs/releasing.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from releasing import checks, compat, gitrepo
from releasing.packages import UnknownPackage, find_packages, get_package, parse_tag

ROOT = Path(__file__).resolve().parents[1]


def list_packages(root: Path, args: argparse.Namespace) -> int:
    for package in find_packages(root).values():
        folder = package.folder.relative_to(root).as_posix()
        print(f"{package.name:20} {package.version:10} {folder:24} {package.tag}")
    return 0


def check(root: Path, args: argparse.Namespace) -> int:
    package = get_package(root, args.package)
    report = checks.check(root, package, args.dist.resolve() if args.dist else None)
    print(report.render())
    print(f"release check {'passed' if report.passed else 'refused'}: {package.name} {package.version}")
    return 0 if report.passed else 1


def tag(root: Path, args: argparse.Namespace) -> int:
    package = get_package(root, args.package)
    # The tag marks HEAD: what was checked must be what HEAD holds.
    changed = gitrepo.uncommitted(root, package.folder)
    if changed:
        print(f"refused: {package.name} has uncommitted changes: {', '.join(changed)}")
        return 1
    if gitrepo.tag_commit(root, package.tag) is not None:
        print(f"refused: tag {package.tag} exists already")
        return 1
    if check(root, args) != 0:
        return 1
    gitrepo.create_tag(root, package.tag, f"{package.name} {package.version}")
    print(
        f"tagged {package.tag} at {gitrepo.head(root)[:12]}; publish it with: git push origin {package.tag}"
    )
    return 0


def compatibility(root: Path, args: argparse.Namespace) -> int:
    packages = find_packages(root)
    names = args.packages or [name for name, package in packages.items() if package.is_plugin]
    plugins = [get_package(root, name) for name in names]
    if not all(plugin.is_plugin for plugin in plugins):
        print("compat tests plugins against core; core itself is not one")
        return 2
    with tempfile.TemporaryDirectory(prefix="release-compat-") as scratch:
        report = compat.run(root, plugins, Path(scratch))
    print(report.render())
    print(f"compatibility {'passed' if report.passed else 'FAILED'}")
    return 0 if report.passed else 1


def resolve_tag(root: Path, args: argparse.Namespace) -> int:
    """The tag's package as `key=value` lines (for $GITHUB_OUTPUT); refused
    when the tag's version is not the one in the package's version.py."""
    name, version = parse_tag(args.tag)
    package = get_package(root, name)
    if package.version != version:
        print(
            f"tag {args.tag} says {version}, {package.version_file.relative_to(root)} says {package.version}"
        )
        return 1
    print(f"package={package.name}\nfolder={package.folder.relative_to(root).as_posix()}\nversion={version}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this script's)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the packages, their versions and release tags")
    for name, helping in (("check", "check a release"), ("tag", "check a release, then tag it")):
        command = commands.add_parser(name, help=helping)
        command.add_argument("package", help="a distribution name: core, core-sklearn, ...")
        command.add_argument("--dist", type=Path, help="keep the built wheel and sdist in this folder")
    command = commands.add_parser("compat", help="plugins against the lowest and highest core they admit")
    command.add_argument("packages", nargs="*", help="plugins (default: all)")
    command = commands.add_parser("resolve-tag", help="the package a release tag names")
    command.add_argument("tag")
    args = parser.parse_args(argv)
    handlers = {
        "list": list_packages,
        "check": check,
        "tag": tag,
        "compat": compatibility,
        "resolve-tag": resolve_tag,
    }
    try:
        return handlers[args.command](args.root.resolve(), args)
    except (UnknownPackage, ValueError) as error:
        print(f"release.py: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
