"""Helpers of ``benchmarks/lr_selection.py``: tasks and grids, cached runs, methods, the report."""
