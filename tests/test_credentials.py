"""The server key pair on disk, and credential files encrypted for it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from simple_scheduler.auth import credentials
from simple_scheduler.auth.credentials import CredentialError, create_credential, read_credential
from simple_scheduler.auth.keys import (
    KEY_BITS,
    KeyPair,
    KeysError,
    ensure_keys,
    generate_keys,
    load_keys,
)
from simple_scheduler.jsonlimits import JsonTooLarge, loads_bounded, nesting_depth


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def keys(key_dir: Path) -> KeyPair:
    return ensure_keys(key_dir / "k" / "private.pem", key_dir / "k" / "public.pem")


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_ensure_keys_generates_a_private_3072_bit_pair(keys: KeyPair, key_dir: Path) -> None:
    private, public = key_dir / "k" / "private.pem", key_dir / "k" / "public.pem"
    assert keys.private_key.key_size == KEY_BITS == 3072
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")  # SPKI
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert sorted(p.name for p in private.parent.iterdir()) == ["private.pem", "public.pem"]
    # A second start loads the same pair instead of making a new one.
    again = ensure_keys(private, public)
    assert again.public_key.public_numbers() == keys.public_key.public_numbers()


def test_missing_public_key_is_rederived(keys: KeyPair, key_dir: Path, tmp_path: Path) -> None:
    private = tmp_path / "private.pem"
    private.write_bytes((key_dir / "k" / "private.pem").read_bytes())
    private.chmod(0o600)
    loaded = ensure_keys(private, tmp_path / "public.pem")
    assert (tmp_path / "public.pem").read_bytes() == keys.public_pem
    assert loaded.public_key.public_numbers() == keys.public_key.public_numbers()


def test_inconsistent_key_files_are_refused(key_dir: Path, tmp_path: Path) -> None:
    public = tmp_path / "public.pem"
    public.write_bytes((key_dir / "k" / "public.pem").read_bytes())
    with pytest.raises(KeysError, match="exists but its private key"):
        ensure_keys(tmp_path / "private.pem", public)
    with pytest.raises(KeysError, match="already exists"):
        generate_keys(tmp_path / "private.pem", public)
    (tmp_path / "private.pem").write_text("not a key")
    with pytest.raises(KeysError, match="not an unencrypted PEM private key"):
        load_keys(tmp_path / "private.pem", public)


def test_mismatched_pair_is_refused(
    key_dir: Path, other_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization

    private = tmp_path / "private.pem"
    private.write_bytes(
        other_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    with pytest.raises(KeysError, match="does not match"):
        load_keys(private, key_dir / "k" / "public.pem")


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "s3cret"), ("bob.smith@example", 'pässwörd "quoted" \n and ; more')],
)
def test_round_trip(keys: KeyPair, username: str, password: str) -> None:
    data = create_credential(keys.public_key, username, password)
    assert password.encode() not in data and username.encode() not in data
    assert read_credential(keys.private_key, data) == (username, password)
    # Fresh randomness each time: two files for the same secret differ.
    assert create_credential(keys.public_key, username, password) != data


def test_garbage_is_refused_with_a_reason(keys: KeyPair) -> None:
    good = create_credential(keys.public_key, "alice", "pw")
    cases = {
        "empty": (b"", "bad magic"),
        "text": (b"username=alice&password=pw", "bad magic"),
        "version": (good[:6] + b"\x09" + good[7:], "version 9"),
        "truncated": (good[:100], "truncated"),
        "wrapped key flipped": (good[:20] + bytes([good[20] ^ 1]) + good[21:], "not made for"),
        "ciphertext flipped": (good[:-1] + bytes([good[-1] ^ 1]), "authentication failed"),
        "too large": (good + b"\0" * 70_000, "too large"),
    }
    for name, (data, reason) in cases.items():
        with pytest.raises(CredentialError, match=reason):
            read_credential(keys.private_key, data)
            pytest.fail(f"{name} was accepted")


def test_file_for_another_key_is_refused(keys: KeyPair, other_key: rsa.RSAPrivateKey) -> None:
    data = create_credential(other_key.public_key(), "alice", "pw")
    with pytest.raises(CredentialError, match="not made for this server's key"):
        read_credential(keys.private_key, data)


def test_deeply_nested_credential_content_is_refused(keys: KeyPair) -> None:
    """Issue 14.9: anyone can encrypt for the public key; 60,000 nested `[` (within the
    file's 64 KiB) must be a CredentialError, not a RecursionError."""
    data_key = AESGCM.generate_key(bit_length=256)
    wrapped = keys.public_key.encrypt(data_key, credentials._oaep())
    header = credentials._HEADER.pack(credentials.MAGIC, credentials.VERSION, len(wrapped))
    nonce = os.urandom(credentials.NONCE_BYTES)
    plaintext = b"[" * 30_000 + b"]" * 30_000
    data = header + wrapped + nonce + AESGCM(data_key).encrypt(nonce, plaintext, header)
    with pytest.raises(CredentialError, match="over the limit"):
        read_credential(keys.private_key, data)


def test_nesting_depth_ignores_brackets_in_strings() -> None:
    assert nesting_depth('{"a": "[[[{{{\\"]]]", "b": [1, [2]]}') == 3
    assert nesting_depth("12") == 0
    assert loads_bounded('{"a": "[[["}', max_depth=1) == {"a": "[[["}
    with pytest.raises(JsonTooLarge, match="nested 2 levels"):
        loads_bounded('{"a": []}', max_depth=1)
    with pytest.raises(JsonTooLarge, match="bytes"):
        loads_bounded('"' + "x" * 100 + '"', max_bytes=50)
