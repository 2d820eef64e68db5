"""Credential files: a user name and password encrypted for the server's public key.

A script can log in with the file (the `credential` part of the login form) instead of a
password in clear. Hybrid encryption, because RSA alone cannot carry an arbitrary payload:
a random AES-256-GCM key encrypts the JSON `{"username", "password"}`, and RSA-OAEP
(SHA-256) wraps that key. Layout, integers big-endian:

    magic  b"SSCRED"         6 bytes
    version 1                1 byte
    wrapped-key length L     2 bytes
    wrapped key              L bytes (the RSA modulus size)
    nonce                    12 bytes
    ciphertext + GCM tag     the rest

The header (magic, version, L) is bound to the ciphertext as GCM associated data, so no
byte of the file can change without the file being refused.
"""

from __future__ import annotations

import json
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from simple_scheduler.jsonlimits import JsonTooLarge, loads_bounded

MAGIC = b"SSCRED"
VERSION = 1
NONCE_BYTES = 12
#: Far above any real file (a 3072-bit key makes about 450 bytes); bounds the work on garbage.
MAX_BYTES = 64 * 1024

_HEADER = struct.Struct(">6sBH")


class CredentialError(Exception):
    """The bytes are not a credential file this server can read."""


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def create_credential(public_key: rsa.RSAPublicKey, username: str, password: str) -> bytes:
    """Encrypt `username` and `password` so that only the private key's holder reads them."""
    data_key = AESGCM.generate_key(bit_length=256)
    wrapped = public_key.encrypt(data_key, _oaep())
    header = _HEADER.pack(MAGIC, VERSION, len(wrapped))
    nonce = os.urandom(NONCE_BYTES)
    plaintext = json.dumps({"username": username, "password": password}).encode("utf-8")
    return header + wrapped + nonce + AESGCM(data_key).encrypt(nonce, plaintext, header)


def read_credential(private_key: rsa.RSAPrivateKey, data: bytes) -> tuple[str, str]:
    """The (username, password) in a credential file, or `CredentialError` saying why not."""
    if len(data) > MAX_BYTES:
        raise CredentialError(f"credential file is too large ({len(data)} bytes)")
    if len(data) < _HEADER.size or not data.startswith(MAGIC):
        raise CredentialError("not a simple-scheduler credential file (bad magic)")
    _, version, wrapped_len = _HEADER.unpack_from(data)
    if version != VERSION:
        raise CredentialError(f"credential file version {version} is not supported")
    header = data[: _HEADER.size]
    body = data[_HEADER.size :]
    if len(body) < wrapped_len + NONCE_BYTES + 16:
        raise CredentialError("credential file is truncated")
    wrapped = body[:wrapped_len]
    nonce = body[wrapped_len : wrapped_len + NONCE_BYTES]
    ciphertext = body[wrapped_len + NONCE_BYTES :]
    try:
        data_key = private_key.decrypt(wrapped, _oaep())
    except ValueError:
        raise CredentialError(
            "credential file was not made for this server's key, or is corrupted"
        ) from None
    if len(data_key) != 32:
        raise CredentialError("credential file holds a key of the wrong size")
    try:
        plaintext = AESGCM(data_key).decrypt(nonce, ciphertext, header)
    except InvalidTag:
        raise CredentialError("credential file is corrupted (authentication failed)") from None
    try:
        document = loads_bounded(plaintext.decode("utf-8"))
    except JsonTooLarge as exc:
        raise CredentialError(f"credential file content is too large: {exc}") from None
    except ValueError:  # UnicodeDecodeError, JSONDecodeError
        raise CredentialError("credential file content is not JSON") from None
    if not isinstance(document, dict):
        raise CredentialError("credential file content is not a JSON object")
    username, password = document.get("username"), document.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise CredentialError("credential file lacks a username or password string")
    return username, password
