"""Judging a run: where the truth (full, or a verified subset) meets the artifacts.

`truth` (the true labels, where known), `evaluation` (accuracy curves, division quality, the
metrics of metrics/eval.json), `relabel` (the export's rule and the final networks' predictions),
`gallery` (the samples to look at). May import: files, datasets.prepared, drawing; torch only
through `relabel`. Never: the epoch loop. Importing the package executes nothing.
"""
