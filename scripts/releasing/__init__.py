"""Per-package releases of this repository (scripts/release.py is the
command): which packages there are, what a release of one needs (a
CHANGELOG entry, a `core` range that admits core, wheels that install and
serve), the release tags, and the plugins' compatibility with the core
versions in the repository's history. See docs/releasing.md."""
