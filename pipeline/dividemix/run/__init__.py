"""What a stage's process needs around the library call: its command line and one-line errors
(`stage`), the machine check (`preflight`), progress lines (`progress`), DVCLive (`live`), and the
library files a stage executes (`code_deps`: dvc.yaml's code deps and a checkpoint's code digest).

May import: config, files, cluster (its launch). Never: Prefect, Dask (no stage starts an orchestrator). Importing the
package executes nothing.
"""
