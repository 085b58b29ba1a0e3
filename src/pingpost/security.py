"""Keys and secrets: high-entropy random keys stored as SHA-256, consumer hashes keyed by HMAC."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def new_key(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def key_hash(key: str) -> str:
    """SHA-256 of a random key: enough for 256-bit secrets, and cheap on the ping path (docs/security.md)."""
    return hashlib.sha256(key.encode()).hexdigest()


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class SecretKey:
    """The server's secret: keys consumer-hash HMACs and encrypts stored post PII."""

    def __init__(self, raw: bytes) -> None:
        self._hmac_key = hmac.new(raw, b"pingpost/consumer-hash", hashlib.sha256).digest()
        self._aead = AESGCM(hmac.new(raw, b"pingpost/pii-encryption", hashlib.sha256).digest())
        self.fingerprint = hmac.new(raw, b"pingpost/fingerprint", hashlib.sha256).hexdigest()[:32]

    @classmethod
    def from_text(cls, text: str) -> SecretKey:
        return cls(text.strip().encode())

    def keyed(self, digest_hex: str) -> str:
        """HMAC of a consumer hash: what pingpost stores instead of the reversible plain hash."""
        return hmac.new(self._hmac_key, digest_hex.lower().encode(), hashlib.sha256).hexdigest()

    def encrypt(self, plaintext: bytes) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, plaintext, None)).decode()

    def decrypt(self, token: str) -> bytes:
        raw = base64.b64decode(token)
        return self._aead.decrypt(raw[:12], raw[12:], None)


def load_or_create_key_file(path: Path) -> str:
    """Read the key file, or create it (mode 0600) with a fresh random key."""
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key
