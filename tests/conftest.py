"""Every test runs against both kernel backends (C and numpy), markupsafe style."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# Triton reads this when it is imported: its kernels then run in the CPU
# interpreter (tests/test_triton_kernel.py).  Set before anything imports triton.
os.environ.setdefault("TRITON_INTERPRET", "1")

import lepton_secagg._kernels as kernels  # noqa: E402
from lepton_secagg._kernels import _native

if kernels.BACKEND == "c":
    from lepton_secagg._kernels import _speedups
else:  # the C extension was not built, or LEPTON_SECAGG_PUREPYTHON=1 switched it off
    _speedups = None
# The Prio3 field kernels (a second extension) follow the same switch.
_FIELD = {"python": (_native.field_transform, _native.field_dot)}
if kernels.FIELD_BACKEND == "c":
    from lepton_secagg._kernels import _field

    _FIELD["c"] = (_field.transform, _field.dot)

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_BACKENDS = [
    pytest.param(_native, id="python"),
    pytest.param(
        _speedups,
        id="c",
        marks=pytest.mark.skipif(_speedups is None, reason="C extension not available"),
    ),
]


@pytest.fixture(scope="session", autouse=True, params=_BACKENDS)
def kernel_backend(request):
    """Patch every kernel (``kernels.NAMES``) for the whole session; yields the backend module."""
    module = request.param
    saved = {name: getattr(kernels, name) for name in kernels.NAMES}
    for name in kernels.NAMES:
        setattr(kernels, name, getattr(module, name))
    saved_field = kernels.field_transform, kernels.field_dot
    kernels.field_transform, kernels.field_dot = _FIELD["python"] if module is _native else _FIELD.get("c", _FIELD["python"])
    try:
        yield module
    finally:
        for name, value in saved.items():
            setattr(kernels, name, value)
        kernels.field_transform, kernels.field_dot = saved_field
