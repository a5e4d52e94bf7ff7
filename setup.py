"""Build the optional C masking kernels; everything else is in pyproject.toml.

The extension is ``optional``: when the compiler fails the package still
installs and runs on the numpy kernels.  ``LEPTON_SECAGG_PUREPYTHON=1`` skips it.
"""
import os
import platform

from setuptools import Extension, setup

ext_modules = []
if not os.environ.get("LEPTON_SECAGG_PUREPYTHON") and platform.python_implementation() == "CPython":
    sources = sorted(
        os.path.join("src_ext", f) for f in os.listdir("src_ext") if f.endswith(".c")
    ) if os.path.isdir("src_ext") else []
    if sources:
        ext_modules.append(
            Extension(
                "lepton_secagg._kernels._speedups",
                sources=sources,
                extra_compile_args=["-O3", "-std=c11", "-pthread", "-ffp-contract=off"],
                extra_link_args=["-pthread"],
                optional=True,
            )
        )
    if os.path.isfile(os.path.join("src_ext", "field", "field.c")):  # the Prio3 field kernels
        ext_modules.append(
            Extension(
                "lepton_secagg._kernels._field",
                sources=[os.path.join("src_ext", "field", "field.c")],
                extra_compile_args=["-O3", "-std=gnu11"],
                optional=True,
            )
        )

setup(ext_modules=ext_modules)
