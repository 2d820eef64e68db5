"""The server's RSA key pair: it signs session tokens and decrypts credential files.

Generated on first start when absent (3072 bits, the NIST size for use beyond 2030). The
private key is PKCS#8 PEM, unencrypted (the server starts unattended), written with mode
0600 atomically: a crash mid-write never leaves a truncated key that a later start would
trip on. The public key is SubjectPublicKeyInfo PEM, for clients that make credential
files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_BITS = 3072
PUBLIC_EXPONENT = 65537

log = logging.getLogger(__name__)


class KeysError(Exception):
    """The key files are missing, unreadable, not RSA, or do not belong together."""


@dataclass(frozen=True)
class KeyPair:
    private_key: rsa.RSAPrivateKey
    public_key: rsa.RSAPublicKey

    @property
    def public_pem(self) -> bytes:
        return public_pem(self.public_key)


def public_pem(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ensure_keys(private_path: str | Path, public_path: str | Path) -> KeyPair:
    """Load the pair, generating it first when neither file exists.

    A missing public key is re-derived from the private one. A public key without its
    private key is refused rather than replaced: credential files made for it would
    silently stop working.
    """
    private_path, public_path = Path(private_path), Path(public_path)
    if private_path.exists():
        if not public_path.exists():
            keys = load_private_key(private_path)
            write_atomically(public_path, keys.public_pem, 0o644)
            log.info("re-created public key %s from %s", public_path, private_path)
            return keys
        return load_keys(private_path, public_path)
    if public_path.exists():
        raise KeysError(
            f"public key {public_path} exists but its private key {private_path} does not; "
            f"restore the private key, or run gen-keys --force to make a new pair"
        )
    return generate_keys(private_path, public_path)


def generate_keys(
    private_path: str | Path, public_path: str | Path, *, overwrite: bool = False
) -> KeyPair:
    """Make a new pair and write both files (refusing to replace unless `overwrite`)."""
    private_path, public_path = Path(private_path), Path(public_path)
    if not overwrite:
        for path in (private_path, public_path):
            if path.exists():
                raise KeysError(f"{path} already exists; not overwriting it")
    private_key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)
    keys = KeyPair(private_key, private_key.public_key())
    write_atomically(private_path, _private_pem(private_key), 0o600)
    write_atomically(public_path, keys.public_pem, 0o644)
    log.info("generated a %d-bit RSA key pair: %s, %s", KEY_BITS, private_path, public_path)
    return keys


def load_private_key(private_path: str | Path) -> KeyPair:
    path = Path(private_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeysError(f"cannot read private key {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeysError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeysError(f"{path} holds a {type(key).__name__}, not an RSA private key")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("private key %s is readable by others (mode %o); chmod 600 it", path, mode)
    return KeyPair(key, key.public_key())


def load_public_key(public_path: str | Path) -> rsa.RSAPublicKey:
    path = Path(public_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeysError(f"cannot read public key {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeysError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeysError(f"{path} holds a {type(key).__name__}, not an RSA public key")
    return key


def load_keys(private_path: str | Path, public_path: str | Path) -> KeyPair:
    """Load both files and check that they are halves of one pair."""
    keys = load_private_key(private_path)
    public_key = load_public_key(public_path)
    if public_key.public_numbers() != keys.public_key.public_numbers():
        raise KeysError(f"public key {public_path} does not match private key {private_path}")
    return keys


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write, fsync, rename: readers see the old file or the whole new one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # mkstemp made it 0600; the public key is wider
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
