"""Trial tokens: digests and constant-time comparison over bytes."""

from __future__ import annotations

import hashlib

from kubetune.rpc.tokens import digest, matches, matches_digest, new_token


def test_tokens_are_random_and_compared_as_bytes() -> None:
    a, b = new_token(), new_token()
    assert a != b and len(a) == 32
    assert matches(a, a) and not matches(a, b)
    assert not matches(a, "é" * 16) and not matches("é", "e")  # non-ASCII: just wrong
    assert matches("ü\udcff", "ü\udcff")  # even lone surrogates compare, never raise


def test_a_digest_verifies_its_token_only() -> None:
    token = new_token()
    assert digest(token) == hashlib.sha256(token.encode()).hexdigest()
    assert matches_digest(digest(token), token)
    assert not matches_digest(digest(token), token[:-1])
    assert not matches_digest(digest(token), digest(token))  # the digest is no token
