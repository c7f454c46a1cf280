"""Per-trial tokens: how they are made, stored as digests, and compared.

A trial's pod (or process) reports with its token; the side that checks it keeps only the SHA-256
digest, so whoever can read a Trial cannot forge reports for it. Comparison is constant-time over
bytes, so a token of any encoding is simply wrong, never an error.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token() -> str:
    return secrets.token_hex(16)


def digest(token: str) -> str:
    """The hex SHA-256 of a token (a token is random, so its digest cannot be inverted)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def matches(expected: str, given: str) -> bool:
    """Constant-time equality of two strings of any content, compared as UTF-8 bytes."""
    return hmac.compare_digest(
        expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )


def matches_digest(expected_digest: str, given: str) -> bool:
    return matches(expected_digest, digest(given))
