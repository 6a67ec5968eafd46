"""Where a run's files live, relative to the repository root: the layout dvc.yaml wires.

The stages take their paths from dvc.yaml; everything that finds a run's files by itself (runs
outside DVC, the audit commands, the Prefect flows) reads these names. Plain strings and no
imports, so the audit and the flows use them without importing torch or training code;
tests keep them equal to dvc.yaml (test_dvc_yaml through `engine.Paths.layout`, test_flows for
the outputs the flows read).
"""

PREPARED = "data/prepared"
TRAIN_TRUTH = f"{PREPARED}/train_truth.npy"
NOISY_LABELS = "data/noisy/labels.parquet"
WARMUP_CHECKPOINT = "checkpoints/warmup/nets.pt"
TRAIN_CHECKPOINT = "checkpoints/train/last.pt"
ARTIFACTS = "artifacts"
WARMUP_ARTIFACTS = f"{ARTIFACTS}/warmup"
BASELINE_ARTIFACTS = f"{ARTIFACTS}/baseline"
DIVISIONS = f"{ARTIFACTS}/divisions"
EPOCHS = f"{ARTIFACTS}/epochs"
EVAL_METRICS = "metrics/eval.json"
DIVISION_PLOT = "plots/division.csv"
REPORT_MD = "report/report.md"
REPORT_HTML = "report/index.html"
