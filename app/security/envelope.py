"""Envelope encryption of provider keys, bound to their owner.

Each write draws a fresh 256-bit data key; the secret is sealed with AES-256-GCM under it and
the data key is wrapped with AES-256-GCM under the keyring's primary master key. Both layers
authenticate associated data naming (format version, owner, provider) — the wrap layer the
master key id too — so a ciphertext copied onto another user's row, or another provider's,
fails to open instead of decrypting to someone else's key. Rotation re-wraps the data key
only: the secret itself is never decrypted to rotate.
"""

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keyscope.app.security.keyring import Keyring

FORMAT_VERSION = 1
NONCE_BYTES = 12
DATA_KEY_BYTES = 32
FINGERPRINT_HEX_CHARS = 16


@dataclass(frozen=True)
class Sealed:
    """What is stored for one secret. Self-describing: the format version and the master key
    id travel with the bytes, so older rows stay readable after the format or keyring moves."""

    ciphertext: bytes = field(repr=False)  # nonce || AES-GCM(data key, secret)
    wrapped_key: bytes = field(repr=False)  # nonce || AES-GCM(master key, data key)
    key_id: str
    format_version: int = FORMAT_VERSION


class UnknownMasterKey(Exception):
    """The row was wrapped under a master key id the keyring does not hold."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"master key id {key_id!r} is not in the keyring")
        self.key_id = key_id


class SealBroken(Exception):
    """Authentication failed: tampered bytes, another owner's row, or a wrong master key."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"ciphertext failed authentication (master key id {key_id!r})")
        self.key_id = key_id


def _associated_data(layer: str, version: int, owner: str, provider: str, kid: str = "") -> bytes:
    """`json.dumps(["keyscope", layer, version, kid, owner, provider]).encode()`, byte for byte.

    JSON keeps fields unambiguous whatever characters an owner id holds. The list is written
    out with the quoting function `json.dumps` itself uses (ASCII-only, default separators)
    because this runs twice per decrypt, on every request; tests/keys compares the two.
    """
    q = encode_basestring_ascii
    return (
        f'["keyscope", {q(layer)}, {int(version)}, {q(kid)}, {q(owner)}, {q(provider)}]'
    ).encode()


class EnvelopeCipher:
    """Seals, opens and re-wraps secrets with the keyring it is given."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        # One AES-GCM object per master key, built once: they hold key material the keyring
        # holds anyway. Data keys are per record and unwrapped per use, never kept.
        self._master = {kid: AESGCM(key) for kid, key in keyring.keys.items()}
        self._fingerprint_key = HKDF(
            algorithm=SHA256(), length=32, salt=None, info=b"keyscope fingerprint v1"
        ).derive(keyring.primary)

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    def seal(self, secret: str, *, owner: str, provider: str) -> Sealed:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        data_aad = _associated_data("data", FORMAT_VERSION, owner, provider)
        ciphertext = nonce + AESGCM(data_key).encrypt(nonce, secret.encode(), data_aad)
        kid = self._keyring.primary_id
        return Sealed(
            ciphertext=ciphertext,
            wrapped_key=self._wrap(data_key, kid, FORMAT_VERSION, owner, provider),
            key_id=kid,
        )

    def open(self, sealed: Sealed, *, owner: str, provider: str) -> str:
        """The plaintext secret, or UnknownMasterKey / SealBroken; never a partial result."""
        data_key = self._unwrap(sealed, owner, provider)
        data_aad = _associated_data("data", sealed.format_version, owner, provider)
        nonce, body = sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:]
        try:
            return AESGCM(data_key).decrypt(nonce, body, data_aad).decode()
        except (InvalidTag, ValueError, UnicodeDecodeError):
            raise SealBroken(sealed.key_id) from None

    def rewrap(self, sealed: Sealed, *, owner: str, provider: str) -> Sealed:
        """The same secret with its data key wrapped under the primary master key."""
        data_key = self._unwrap(sealed, owner, provider)
        kid = self._keyring.primary_id
        wrapped = self._wrap(data_key, kid, sealed.format_version, owner, provider)
        return Sealed(sealed.ciphertext, wrapped, kid, sealed.format_version)

    def fingerprint(self, secret: str, *, owner: str, provider: str) -> str:
        """A short keyed digest: identifies a key to its owner without allowing a dictionary
        attack (a bare hash of a short key would) or linking two users who share a key."""
        message = json.dumps([owner, provider, secret]).encode()
        digest = hmac.new(self._fingerprint_key, message, hashlib.sha256).hexdigest()
        return digest[:FINGERPRINT_HEX_CHARS]

    def _wrap(self, data_key: bytes, kid: str, version: int, owner: str, provider: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        aad = _associated_data("wrap", version, owner, provider, kid)
        return nonce + self._master[kid].encrypt(nonce, data_key, aad)

    def _unwrap(self, sealed: Sealed, owner: str, provider: str) -> bytes:
        master = self._master.get(sealed.key_id)
        if master is None:
            raise UnknownMasterKey(sealed.key_id)
        if sealed.format_version != FORMAT_VERSION:
            raise SealBroken(sealed.key_id)
        aad = _associated_data("wrap", sealed.format_version, owner, provider, sealed.key_id)
        nonce, body = sealed.wrapped_key[:NONCE_BYTES], sealed.wrapped_key[NONCE_BYTES:]
        try:
            data_key = master.decrypt(nonce, body, aad)
        except (InvalidTag, ValueError):
            raise SealBroken(sealed.key_id) from None
        if len(data_key) != DATA_KEY_BYTES:
            raise SealBroken(sealed.key_id)
        return data_key
