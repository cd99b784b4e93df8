"""Experiments over whole runs: repeated seeds, hyperparameter search, run comparison.

Each module here drives ``erckit.train`` and reads run folders back (``metrics.jsonl``,
``test_report.json``, ``recipe.toml``); none changes how one run trains.
"""
