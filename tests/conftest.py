import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


import gc as _gc
import warnings as _warnings

import pytest as _pytest


@_pytest.fixture(autouse=True)
def _leak_probe(request):
    yield
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        _gc.collect()
    for w in caught:
        with open("/tmp/leaks.txt", "a") as f:
            f.write(f"{request.node.nodeid}: {w.category.__name__}: {w.message}\n")
