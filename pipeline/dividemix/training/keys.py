"""The parameters each part of the epoch loop reads; every training stage's PARAMS is made of them.

Plain names, no imports: a stage script declares its keys before it imports the (slow) training
code, and tests/test_dvc_yaml.py keeps every stage's PARAMS equal to its `params:` in dvc.yaml.
"""

# training.workspace: the data, the device path, the networks and the processes sharing the work
# (model.pretrained apart: only the stages that build networks from scratch read it).
WORKSPACE = (
    "data.dataset", "data.flip", "model.arch", "train.seed", "train.device", "train.amp", "train.channels_last", "train.compile",
    "train.eval_batch_size", "ablation.augmentation", "distributed.processes_per_machine", "distributed.machines",
    "distributed.sync_batchnorm",
)  # (and data.storage, read but not a parameter: config.RESULT_NEUTRAL)
OPTIMISER = ("train.lr", "train.lr_drop_epoch", "train.momentum", "train.weight_decay")  # training.optim
SAMPLING = ("train.batch_size", "train.protocol", "train.num_batches")  # training.sampling: batches, subsets
