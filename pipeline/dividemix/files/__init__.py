"""The files a run writes: the Parquet artifact contract (`artifacts`), where each file lives
(`layout`, the layout dvc.yaml wires) and atomic writes (`atomic`).

May import: nothing of the library (standard library, pyarrow, pandas): the audit and the flows
read runs through this part without loading torch. Importing the package executes nothing.
"""
