"""Prefect orchestration of the DVC pipeline: one task per DVC stage, progress and report
artifacts for the Prefect UI, and sweeps of DVC experiments on a Prefect task runner.

DVC stays the one record of what ran: every task asks DVC whether its stage is up to date and
runs it with `dvc repro --single-item`, and a sweep point is a `dvc exp run --temp`. The flows
read only what the stages write (Parquet, CSV, JSON, the report); they never import training
code, and nothing under `stages/` or `pipeline/dividemix/` imports Prefect (a test checks).

Importing this package is light; Prefect and DVC load with `dividemix_flows.pipeline` and
`dividemix_flows.sweep`.
"""
