"""Data sets: how each family is prepared (`download`), and the prepared-folder format every stage reads.

Importing this package executes nothing: the stages that train import only
`datasets.prepared` (the format), so editing a family's download code reruns only `download`.
May import: config, files. Never: torch, training.
"""
