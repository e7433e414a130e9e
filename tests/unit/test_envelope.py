"""Envelope encryption: fresh keys, owner binding, tamper detection, keyring and re-wrap."""

import base64
import hashlib
from dataclasses import replace

import pytest

from keyscope.app.errors import ConfigurationError
from keyscope.app.security.envelope import EnvelopeCipher, SealBroken, UnknownMasterKey
from keyscope.app.security.keyring import Keyring, new_master_key_entry

K1 = "k1:" + base64.b64encode(b"\x01" * 32).decode()
K2 = "k2:" + base64.b64encode(b"\x02" * 32).decode()
SECRET = "AIzaSy-a-real-looking-key-0123456789"


@pytest.fixture
def cipher() -> EnvelopeCipher:
    return EnvelopeCipher(Keyring.parse(K1))


def test_round_trip(cipher: EnvelopeCipher) -> None:
    """What is sealed for (alice, gemini) opens for (alice, gemini)."""
    sealed = cipher.seal(SECRET, owner="alice", provider="gemini")
    assert cipher.open(sealed, owner="alice", provider="gemini") == SECRET
    assert SECRET.encode() not in sealed.ciphertext + sealed.wrapped_key
    assert sealed.key_id == "k1"
    assert sealed.format_version == 1


def test_every_seal_is_fresh(cipher: EnvelopeCipher) -> None:
    """Two seals of the same secret share no nonce, data key wrap or ciphertext."""
    first = cipher.seal(SECRET, owner="alice", provider="gemini")
    second = cipher.seal(SECRET, owner="alice", provider="gemini")
    assert first.ciphertext != second.ciphertext
    assert first.wrapped_key != second.wrapped_key
    assert first.ciphertext[:12] != second.ciphertext[:12]


@pytest.mark.parametrize(("owner", "provider"), [("bob", "gemini"), ("alice", "exa")])
def test_sealed_for_one_owner_fails_for_another(
    cipher: EnvelopeCipher, owner: str, provider: str
) -> None:
    """A row copied to another user or provider fails authentication instead of decrypting."""
    sealed = cipher.seal(SECRET, owner="alice", provider="gemini")
    with pytest.raises(SealBroken) as caught:
        cipher.open(sealed, owner=owner, provider=provider)
    assert SECRET not in str(caught.value)


def test_owner_encoding_is_unambiguous(cipher: EnvelopeCipher) -> None:
    """Owner/provider boundaries cannot be shifted to forge a match."""
    sealed = cipher.seal(SECRET, owner="a:b", provider="gemini")
    with pytest.raises(SealBroken):
        cipher.open(sealed, owner="a", provider="b:gemini")


@pytest.mark.parametrize("field", ["ciphertext", "wrapped_key"])
def test_any_flipped_bit_fails(cipher: EnvelopeCipher, field: str) -> None:
    """A flipped bit anywhere in either layer is detected."""
    sealed = cipher.seal(SECRET, owner="alice", provider="gemini")
    blob = bytearray(getattr(sealed, field))
    for position in (0, len(blob) // 2, len(blob) - 1):
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        broken = (
            replace(sealed, ciphertext=bytes(tampered))
            if field == "ciphertext"
            else replace(sealed, wrapped_key=bytes(tampered))
        )
        with pytest.raises(SealBroken):
            cipher.open(broken, owner="alice", provider="gemini")


def test_truncated_blobs_fail(cipher: EnvelopeCipher) -> None:
    """Empty or truncated ciphertexts fail cleanly."""
    sealed = cipher.seal(SECRET, owner="alice", provider="gemini")
    for broken in (replace(sealed, ciphertext=b""), replace(sealed, wrapped_key=b"\x00" * 5)):
        with pytest.raises(SealBroken):
            cipher.open(broken, owner="alice", provider="gemini")


def test_unknown_and_wrong_master_keys(cipher: EnvelopeCipher) -> None:
    """A missing key id names the id; a wrong key under the same id fails authentication."""
    sealed = cipher.seal(SECRET, owner="alice", provider="gemini")
    with pytest.raises(UnknownMasterKey, match="'k1'"):
        EnvelopeCipher(Keyring.parse(K2)).open(sealed, owner="alice", provider="gemini")
    impostor = "k1:" + base64.b64encode(b"\x09" * 32).decode()
    with pytest.raises(SealBroken, match="'k1'"):
        EnvelopeCipher(Keyring.parse(impostor)).open(sealed, owner="alice", provider="gemini")


def test_older_keys_still_decrypt_and_rewrap_moves_to_primary(cipher: EnvelopeCipher) -> None:
    """After k2 becomes primary, k1 rows open; re-wrap moves them to k2 without re-encrypting."""
    sealed = cipher.seal(SECRET, owner="alice", provider="gemini")
    rotated = EnvelopeCipher(Keyring.parse(f"{K2},{K1}"))
    assert rotated.open(sealed, owner="alice", provider="gemini") == SECRET
    rewrapped = rotated.rewrap(sealed, owner="alice", provider="gemini")
    assert rewrapped.key_id == "k2"
    assert rewrapped.ciphertext == sealed.ciphertext
    assert (
        EnvelopeCipher(Keyring.parse(K2)).open(rewrapped, owner="alice", provider="gemini")
        == SECRET
    )


def test_fingerprint_is_keyed_and_owner_bound(cipher: EnvelopeCipher) -> None:
    """The fingerprint is not a bare hash, differs per owner, and is stable per owner."""
    fp = cipher.fingerprint(SECRET, owner="alice", provider="gemini")
    assert fp == cipher.fingerprint(SECRET, owner="alice", provider="gemini")
    assert fp != cipher.fingerprint(SECRET, owner="bob", provider="gemini")
    assert fp not in hashlib.sha256(SECRET.encode()).hexdigest()
    other = EnvelopeCipher(Keyring.parse(K2))
    assert fp != other.fingerprint(SECRET, owner="alice", provider="gemini")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "k1",
        "k1:not-base64!",
        "k1:" + base64.b64encode(b"short").decode(),
        f"{K1},{K1}",
        "bad kid:" + base64.b64encode(b"\x01" * 32).decode(),
    ],
)
def test_bad_keyrings_are_refused_without_echo(text: str) -> None:
    """Malformed keyrings raise a ConfigurationError that never contains key material."""
    with pytest.raises(ConfigurationError) as caught:
        Keyring.parse(text)
    material = text.partition(":")[2]
    if len(material) > 8:
        assert material not in str(caught.value)


def test_keyring_repr_hides_keys() -> None:
    """The keyring's repr names ids, never bytes."""
    keyring = Keyring.parse(f"{K1},{K2}")
    assert keyring.primary_id == "k1"
    assert K1.partition(":")[2] not in repr(keyring)
    entry = new_master_key_entry("fresh")
    assert Keyring.parse(entry).primary_id == "fresh"


@pytest.mark.parametrize(
    "owner",
    ["alice", 'a"b', "a\\b", "tab\there", "ünïcødé", "emoji-\U0001f511", "\x00\x1f\x7f", ""],
)
def test_associated_data_is_the_json_list_byte_for_byte(owner: str) -> None:
    """The hand-written associated data equals `json.dumps` of the list (stored rows stay valid)."""
    import json

    from keyscope.app.security.envelope import _associated_data

    for layer, kid in (("data", ""), ("wrap", "k1"), ("wrap", 'k"2')):
        expected = json.dumps(["keyscope", layer, 1, kid, owner, "gemini"]).encode()
        assert _associated_data(layer, 1, owner, "gemini", kid) == expected


def test_rows_sealed_with_json_associated_data_still_open(cipher: EnvelopeCipher) -> None:
    """A row sealed with associated data built by `json.dumps` opens (format unchanged)."""
    import json
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    owner, provider, kid = 'o"wn\u00e9r', "exa", "k1"
    data_key, n1, n2 = AESGCM.generate_key(bit_length=256), os.urandom(12), os.urandom(12)
    data_aad = json.dumps(["keyscope", "data", 1, "", owner, provider]).encode()
    wrap_aad = json.dumps(["keyscope", "wrap", 1, kid, owner, provider]).encode()
    sealed = replace(
        cipher.seal("placeholder", owner=owner, provider=provider),
        ciphertext=n1 + AESGCM(data_key).encrypt(n1, SECRET.encode(), data_aad),
        wrapped_key=n2 + AESGCM(b"\x01" * 32).encrypt(n2, data_key, wrap_aad),
    )
    assert cipher.open(sealed, owner=owner, provider=provider) == SECRET
