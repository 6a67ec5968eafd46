"""The paper: its settings as named presets (`presets`, with the paper's numbers) and experiments
laid out as its tables (`table`: mean ± std over seeds beside the paper's number).

May import: config. Never: torch, training. Importing the package executes nothing.
"""
