"""Audit of the per-epoch divisions: compare two runs, follow one sample, export the cleaned labels.

Pure functions over *run sources* (`sources`): a run's artifacts read from a folder on disk, or
from a git revision or DVC experiment through `dvc.api.DVCFileSystem` (nothing is checked out: the
DVC-tracked artifacts are read from the cache). `epochs` reads a run's divisions one epoch at a
time, `measures` compares and judges divisions, `diff`, `trace` and `export` are the three
commands, `text` and `pages` present a diff in the terminal and as a self-contained page. The
command line lives in `dividemix_cli.audit`. Nothing here imports torch, except `export`, which
needs the trained networks. May import: files, datasets, judging, drawing; DVC in `sources` only.
Importing the package executes nothing.
"""
