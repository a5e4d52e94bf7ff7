"""Layers point one way (DESIGN.md §4), checked on the source with ast."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "lepton_secagg"

# Lowest first; a module may import lepton_secagg modules of its own layer or below.
LAYERS = [
    ("kernels", ["_kernels/", "exceptions.py", "_version.py"]),
    ("hazmat", ["hazmat/"]),
    ("wire", ["messages.py", "wire.py", "config.py", "policy.py", "parameters.py", "encoding.py", "dp/", "arrays.py"]),
    # Prio3 (issue 15): its own stack on hazmat and wire, beside (not on) the SecAgg rounds.
    ("mpc", ["mpc/__init__.py", "mpc/errors.py", "mpc/field.py", "mpc/xof.py", "mpc/flp.py", "mpc/circuits.py",
             "mpc/l2.py", "mpc/prio3.py", "mpc/batch.py",
             "mpc/keys.py"]),
    ("rounds", ["_state.py", "_session.py", "_client_rounds.py", "_server_rounds.py", "device_input.py"]),
    ("sessions", ["client.py", "server.py"]),
    ("transport", ["transport/", "testing.py", "_progress.py", "mpc/service.py"]),
    ("adapters", ["adapters/", "integrations/"]),
    ("apps", ["fl/", "cli.py", "__main__.py", "mpc/cli.py", "dp_demo.py", "_preflight.py"]),
]
NO_IO_BELOW = "transport"  # no socket, thread, clock or event loop below this layer
IO_MODULES = {"socket", "asyncio", "threading", "time", "selectors", "subprocess"}


def layer_of(rel: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in prefixes):
            return index
    raise AssertionError(f"{rel} is in no layer: add it to LAYERS")


def modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel != "__init__.py":  # the facade re-exports everything
            yield rel, ast.parse(path.read_text(encoding="utf-8"))


def imports(tree, rel):
    """(module name, top-level?) for every import; relative imports resolved inside the package."""
    package = ["lepton_secagg", *rel.split("/")[:-1]]
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
                targets = [name] if node.module else [f"{name}.{a.name}" for a in node.names]
            else:
                targets = [node.module]
            for name in targets:
                yield name, id(node) in top


def target_rel(name: str) -> str | None:
    parts = name.split(".")[1:]
    for cut in range(len(parts), 0, -1):
        candidate = PKG.joinpath(*parts[:cut])
        if candidate.with_suffix(".py").exists():
            return candidate.with_suffix(".py").relative_to(PKG).as_posix()
        if (candidate / "__init__.py").exists():
            return (candidate / "__init__.py").relative_to(PKG).as_posix()
    return None


ALL = list(modules())

# Stochastic-rounding noise is not a secret (the masks hide it): DESIGN.md §3
# lets it come from a generator seeded by the OS.
OS_SEEDED_NOISE = {"adapters/torch/quantization.py"}
# Triton kernels must be defined at module level (@triton.jit reads their
# source), so these modules import triton at the top; adapters/torch/masking.py
# imports them lazily, the first time a GPU tensor is masked.
TRITON_MODULES = {"adapters/_triton_chacha20.py"}
TRITON_CALLER = "adapters/torch/masking.py"


@pytest.mark.parametrize("rel,tree", ALL, ids=[r for r, _ in ALL])
def test_imports_point_down(rel, tree):
    mine = layer_of(rel)
    for name, _ in imports(tree, rel):
        if not name.startswith("lepton_secagg"):
            continue
        target = target_rel(name)
        if target is None or target == "__init__.py":
            continue
        assert layer_of(target) <= mine, f"{rel} ({LAYERS[mine][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"


@pytest.mark.parametrize("rel,tree", ALL, ids=[r for r, _ in ALL])
def test_third_party_boundaries(rel, tree):
    below_io = layer_of(rel) < [n for n, _ in LAYERS].index(NO_IO_BELOW)
    for name, top_level in imports(tree, rel):
        root = name.split(".")[0]
        if root == "msgpack":
            assert rel == "wire.py", f"{rel} imports msgpack: only wire.py speaks it"
        if root == "torch":
            assert rel.startswith(("adapters/", "fl/")) and not top_level, f"{rel} imports torch (only adapters and fl, lazily)"
        if root == "triton":
            assert rel.startswith("adapters/"), f"{rel} imports triton (only the adapters)"
            assert not top_level or rel in TRITON_MODULES, f"{rel} imports triton at import time"
        if name.startswith("lepton_secagg") and target_rel(name) in TRITON_MODULES:
            assert rel == TRITON_CALLER and not top_level, f"{rel} imports {name}: only {TRITON_CALLER}, lazily"
        if root == "flwr":
            assert rel == "integrations/flower.py" and not top_level, f"{rel} imports flwr (only the Flower integration, lazily)"
        if root == "matplotlib":
            assert rel.startswith("fl/") and not top_level, f"{rel} imports matplotlib at import time"
        assert root not in {"pickle", "marshal", "shelve"}, f"{rel} imports {root}"
        if below_io:
            assert root not in IO_MODULES, f"{rel} imports {root}: no I/O, threads or clocks below the transport"


@pytest.mark.parametrize("rel,tree", ALL, ids=[r for r, _ in ALL])
def test_secret_randomness_only_from_the_rng_module(rel, tree):
    if rel == "hazmat/rng.py" or rel in OS_SEEDED_NOISE:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"urandom", "token_bytes", "token_hex", "getrandbits"}:
            pytest.fail(f"{rel}:{node.lineno} draws randomness itself ({node.attr}); use the injectable rng")
    for name, _ in imports(tree, rel):
        assert name.split(".")[0] not in {"secrets", "random"}, f"{rel} imports {name}; secrets come from hazmat.rng"


def test_the_check_can_fail():
    tree = ast.parse("import msgpack\nfrom ..transport import server\nimport os\nos.urandom(3)")
    with pytest.raises(AssertionError):
        test_third_party_boundaries("hazmat/prg.py", tree)
    with pytest.raises(AssertionError):
        test_imports_point_down("hazmat/prg.py", ast.parse("from ..transport import server"))
    # the kernels are the lowest layer: not even the numpy kernel may reach up into hazmat
    with pytest.raises(AssertionError, match=r"_kernels/_native.py \(kernels\) imports hazmat/prg.py"):
        test_imports_point_down("_kernels/_native.py", ast.parse("from ..hazmat.prg import keystream"))
    with pytest.raises(pytest.fail.Exception):
        test_secret_randomness_only_from_the_rng_module("hazmat/prg.py", tree)
    with pytest.raises(AssertionError, match="imports triton"):
        test_third_party_boundaries("fl/server.py", ast.parse("def f():\n    import triton"))
    with pytest.raises(AssertionError, match="at import time"):
        test_third_party_boundaries(TRITON_CALLER, ast.parse("import triton"))
    with pytest.raises(AssertionError, match=f"only {TRITON_CALLER}, lazily"):
        test_third_party_boundaries(TRITON_CALLER, ast.parse("from .. import _triton_chacha20"))


SECAGG_CORE = {"_client_rounds.py", "_server_rounds.py", "_state.py", "_session.py", "client.py", "server.py"}


@pytest.mark.parametrize("rel,tree", [(r, t) for r, t in ALL if r.startswith("mpc/")], ids=lambda x: x if isinstance(x, str) else "")
def test_mpc_does_not_use_the_secagg_core(rel, tree):
    for name, _ in imports(tree, rel):
        if name.startswith("lepton_secagg"):
            assert target_rel(name) not in SECAGG_CORE, f"{rel} imports {name}: Prio3 shares hazmat and wire only"
