"""Serving: what a run trained, used without the training loop.

`run_model` (a run's two networks, from a folder or a git revision / DVC experiment: the final or
the best-validation weights, with what they need to know of the data: classes, preprocessing),
`inputs` (image files, list files and folders to the networks' input through exactly the run's
evaluation transform; Pillow and numpy, no torch), `predict` (the ensemble over a stream of images,
written as Parquet and CSV rows), `onnx_export` (the ensemble as ONNX with a dynamic batch, the
weights as safetensors, model.json; checked with onnxruntime against PyTorch).

May import: `config`, `files`, `datasets`, `device`, `method` (`models`), `training` (`checkpoint`:
loading), `audit` (`sources`, `epochs`: a run read from a revision, as `diff` reads it). Never: the
truth, the training loops, Prefect. torch, onnx and onnxruntime are imported by the modules that
run networks, and the command line imports those inside its handlers only.
"""
