"""SASL PLAIN (RFC 4616): ``[authzid] NUL authcid NUL passwd``."""

from __future__ import annotations


def parse_plain(response: bytes) -> tuple[str, str] | None:
    parts = response.split(b"\x00")
    if len(parts) != 3:
        return None
    _, username, password = parts
    try:
        return username.decode(), password.decode()
    except UnicodeDecodeError:
        return None
