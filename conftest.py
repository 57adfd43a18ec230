"""The suite runs in two environments (dev.py): core-alibi-detect's tests
need alibi-detect, which pins numpy<2, and run in `.venvs/alibi-detect`;
the main environment, on numpy 2, does not collect them."""

import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("alibi_detect") else ["plugins/alibi-detect/*"]
