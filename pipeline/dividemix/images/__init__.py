"""Images as the networks see them: uint8 rows in, normalised (augmented) batches out, on the device.

`batches` (the interface and the whole set on the device), `streamed` (rows read from the prepared
store on disk, batch by batch), `transforms` (batched crops and flips, torchvision's
distributions). May import: device, datasets.spec, torch. Never: training, judging, Prefect, DVC.
Importing the package executes nothing.
"""
