"""The report: one self-contained HTML page and one Markdown file with the run's figures.

`build.build_report` checks the inputs and writes the folder; `figures` draws, `tables` formats
the rows, `render` turns both into the two pages. May import: files, datasets, judging, drawing,
paper. Never: training. Importing the package executes nothing.
"""
