"""Shared test set-up: hypothesis profiles.

``default``: 100 examples per property, no deadline (2 shared cores make timings noisy).
``ci`` (chosen when ``CI=true``): the same, derandomized, so a CI run is reproducible.
``thorough``: 2,000 examples, for a long hunt: ``pytest --hypothesis-profile=thorough``.
"""

import os

from hypothesis import settings

settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "default")
