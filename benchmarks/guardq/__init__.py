"""Helpers of ``benchmarks/guard_quality.py``: fault injectors for ``fit`` runs and the plain-loop
regression runs."""
