"""Adapters between lepton_secagg's numpy core and ML frameworks.

``lepton_secagg.adapters.torch``: flatten a ``state_dict`` into one vector,
quantise it on the tensors' device, and add ChaCha20 / AES-CTR masks to
int32/int64 tensors bit-identically to ``lepton_secagg.hazmat.masking``; on
CUDA tensors ChaCha20 runs in the fused Triton kernel of ``_triton_chacha20``.
Importing an adapter never imports its framework: torch (and triton) are
imported lazily, the first time a function needs them.
"""

from types import ModuleType


def __getattr__(name: str) -> ModuleType:
    # ``ls.adapters.torch`` without an explicit import; the module itself
    # still imports torch only when one of its functions needs it.
    if name == "torch":
        import importlib

        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
