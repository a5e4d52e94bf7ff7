"""What a client agrees to run: the server proposes a ``Config``, the client's ``Policy`` decides.

A configuration that reaches a client over the network (``transport``, the
CLI's ``join``, the FL layer, the Flower mod) is the server's proposal.
``Config`` itself refuses parameters that are unsound for what they state;
a ``Policy`` refuses those that state too little: a downgraded mode, a
threshold that withstands fewer colluders than the client assumes, other
identities than the cohort's, another ring or PRG, or anything but one pinned
configuration.  ``Policy.check`` is called before the client draws a key.

A client with an identity (active mode) accepts only active mode, with its
own verify key at its own index, and only when the policy pins the other
clients' identities (``identities``, ``config`` or ``config_digest``):
otherwise a server could replace every other identity with its own clients'
and read the input (docs/security.md, "Choosing parameters").
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import NoReturn

from .config import MODES, Config
from .exceptions import ConfigRefused
from .hazmat.prg import SUITES
from .hazmat.sign import VERIFY_KEY_SIZE, Identity
from .parameters import SECURITY_PARAMETER, min_sound_threshold

__all__ = ["Policy"]


@dataclass(frozen=True)
class Policy:
    """The configurations a client accepts.  Every field left at its default accepts anything.

    Args:
        config: accept exactly this configuration (a refusal names the first differing field).
        config_digest: accept only the configuration with this 32-byte ``Config.digest``.
        mode: require this threat mode ("semi-honest" or "active").
        corrupt_fraction: the fraction of all clients this client assumes may
            collude with the server; the configuration's threshold must
            withstand it, whatever fraction the configuration itself states.
        security_bits: the statistical security the SecAgg+ threshold bound must
            reach (2^-security_bits), 40 by default as in the finder.
        bits: require this ring width.
        prg: require this mask PRG suite.
        identities: require exactly these verify keys, one per client id.

    Raises:
        TypeError / ValueError: a field has the wrong type or value.
    """

    config: Config | None = None
    config_digest: bytes | None = None
    mode: str | None = None
    corrupt_fraction: float = 0.0
    security_bits: int = SECURITY_PARAMETER
    bits: int | None = None
    prg: str | None = None
    identities: tuple[bytes, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.config is not None and not isinstance(self.config, Config):
            raise TypeError(f"config must be a Config, not {type(self.config).__name__}.")
        if self.config_digest is not None and (not isinstance(self.config_digest, bytes) or len(self.config_digest) != 32):
            raise ValueError("config_digest must be the 32-byte Config.digest.")
        if self.mode is not None and self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} or None, got {self.mode!r}.")
        if isinstance(self.corrupt_fraction, bool) or not isinstance(self.corrupt_fraction, (int, float)) or not 0 <= self.corrupt_fraction < 1:
            raise ValueError(f"corrupt_fraction must be in [0, 1), got {self.corrupt_fraction!r}.")
        if isinstance(self.security_bits, bool) or not isinstance(self.security_bits, int) or not 1 <= self.security_bits <= 256:
            raise ValueError(f"security_bits must be an int in 1..256, got {self.security_bits!r}.")
        if self.bits is not None and (isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= 64):
            raise ValueError(f"bits must be an int in 1..64 or None, got {self.bits!r}.")
        if self.prg is not None and self.prg not in SUITES:
            raise ValueError(f"prg must be one of {sorted(SUITES)} or None, got {self.prg!r}.")
        if self.identities is not None:
            ids = tuple(self.identities)
            if any(not isinstance(k, bytes) or len(k) != VERIFY_KEY_SIZE for k in ids):
                raise ValueError(f"identities must be verify keys of {VERIFY_KEY_SIZE} bytes each.")
            object.__setattr__(self, "identities", ids)

    @property
    def pins_identities(self) -> bool:
        """True when the policy fixes every client's identity (directly or through a pinned configuration)."""
        return self.identities is not None or self.config is not None or self.config_digest is not None

    def check(self, cfg: Config, client_id: int, identity: Identity | None = None) -> None:
        """Refuse ``cfg`` for client ``client_id`` (holding ``identity``, or None) unless this policy accepts it.

        Raises:
            ConfigRefused: the first rule ``cfg`` breaks, naming the field and both values.
        """
        if self.config is not None and cfg != self.config:
            name = next(f.name for f in fields(Config) if getattr(cfg, f.name) != getattr(self.config, f.name))
            if name == "identities":
                _check_identities(cfg.identities, self.config.identities, "the pinned configuration has")
            _refuse(name, getattr(cfg, name), getattr(self.config, name), "the pinned configuration has")
        if self.config_digest is not None and cfg.digest != self.config_digest:
            _refuse("digest", cfg.digest.hex(), self.config_digest.hex(), "the pinned digest is")
        if identity is not None:
            if cfg.mode != "active":
                _refuse("mode", cfg.mode, "active", "a client with an identity requires")
            own = None if cfg.identities is None else cfg.identities[client_id]
            if own != identity.verify_key:
                _refuse(f"identities[{client_id}]", own and own.hex(), identity.verify_key.hex(), "this client's own key is")
            if not self.pins_identities:
                raise ConfigRefused(
                    "this client has an identity, but its policy pins neither the cohort's identities nor the "
                    "configuration (identities, config or config_digest), so a server could replace every other "
                    "identity with its own clients'; refusing to take part.",
                    client_id=client_id,
                )
        for name in ("mode", "bits", "prg"):
            want = getattr(self, name)
            if want is not None and getattr(cfg, name) != want:
                _refuse(name, getattr(cfg, name), want, "this client's policy requires")
        if self.identities is not None:
            _check_identities(cfg.identities, self.identities, "this client's policy pins")
        need = min_sound_threshold(cfg.num_clients, cfg.neighbors, self.corrupt_fraction, cfg.mode, self.security_bits)
        if cfg.threshold < need:
            _refuse("threshold", cfg.threshold, need, f"to withstand corrupt_fraction = {self.corrupt_fraction} at 2^-{self.security_bits} this client's policy requires at least")


def _check_identities(got: tuple[bytes, ...] | None, want: tuple[bytes, ...] | None, rule: str) -> None:
    got, want = got or (), want or ()
    if len(got) != len(want):
        _refuse("identities", f"{len(got)} keys", f"{len(want)} keys", rule)
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            _refuse(f"identities[{i}]", a.hex(), b.hex(), rule)


def _refuse(name: str, got: object, want: object, rule: str) -> NoReturn:
    raise ConfigRefused(f"the server's configuration has {name} = {got!r}, but {rule} {want!r}.")
