"""The keyring of master keys: `kid:base64(32 bytes)` entries, the first one primary."""

import base64
import binascii
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from keyscope.app.errors import ConfigurationError

MASTER_KEY_BYTES = 32
_KID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Keyring:
    """Master keys by id. Never printed: the repr names the ids only."""

    primary_id: str
    keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.primary_id not in self.keys:
            raise ConfigurationError("the primary master key id is not in the keyring")

    @classmethod
    def parse(cls, text: str) -> "Keyring":
        """Parse `kid:base64,kid:base64`; errors name the entry's position, never its bytes."""
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for position, entry in enumerate(
            (e.strip() for e in text.split(",") if e.strip()), start=1
        ):
            kid, sep, encoded = entry.partition(":")
            if not sep or not _KID.match(kid):
                raise ConfigurationError(
                    f"KEYSCOPE_MASTER_KEYS entry {position} must look like kid:base64"
                )
            try:
                material = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise ConfigurationError(
                    f"KEYSCOPE_MASTER_KEYS entry {position} ({kid}) is not valid base64"
                ) from None
            if len(material) != MASTER_KEY_BYTES:
                raise ConfigurationError(
                    f"KEYSCOPE_MASTER_KEYS entry {position} ({kid}) must decode to 32 bytes"
                )
            if kid in keys:
                raise ConfigurationError(f"KEYSCOPE_MASTER_KEYS repeats the key id {kid}")
            keys[kid] = material
            order.append(kid)
        if not order:
            raise ConfigurationError("KEYSCOPE_MASTER_KEYS holds no key")
        return cls(primary_id=order[0], keys=keys)

    @property
    def primary(self) -> bytes:
        return self.keys[self.primary_id]

    def __contains__(self, kid: object) -> bool:
        return kid in self.keys


def is_valid_key_id(kid: str) -> bool:
    """Whether `kid` may name a master key (what `Keyring.parse` accepts)."""
    return _KID.match(kid) is not None


def new_master_key_entry(kid: str) -> str:
    """A fresh `kid:base64` entry, for `keyscope keygen` and the local dev keyring."""
    return f"{kid}:{base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).decode()}"
