"""What the pages show: matplotlib figures as PNG (`plots`) and thumbnails read from the prepared
store (`thumbnails`), for the report, `dividemix diff --html` and `dividemix inspect`.

May import: datasets.prepared, matplotlib, Pillow. Never: torch, training. Importing the package
executes nothing.
"""
