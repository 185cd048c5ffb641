"""TLS server contexts for the amqps and management listeners.

TLS 1.2 is the floor (RFC 8996 deprecates 1.0 and 1.1); the ciphers are
OpenSSL's defaults for the protocol versions left. Client certificates are
optional: ``verify_peer`` asks for one and checks it against ``cafile``;
``fail_if_no_peer_cert`` also refuses clients that send none (RabbitMQ's
``ssl_options.verify`` and ``fail_if_no_peer_cert``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

AMQPS_PORT = 5671


@dataclass(frozen=True)
class TLSSettings:
    certfile: Path
    keyfile: Path
    cafile: Path | None = None
    verify_peer: bool = False
    fail_if_no_peer_cert: bool = False
    password: str | None = None  # for an encrypted key file

    def __post_init__(self) -> None:
        if (self.verify_peer or self.fail_if_no_peer_cert) and self.cafile is None:
            raise ValueError("verifying client certificates needs a cafile")


def server_context(settings: TLSSettings) -> ssl.SSLContext:
    """A server-side SSLContext: TLS 1.2+, our certificate, optional client verification."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # No renegotiation and no compression (CRIME); the server picks the cipher.
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    if hasattr(ssl, "OP_NO_RENEGOTIATION"):
        context.options |= ssl.OP_NO_RENEGOTIATION
    context.load_cert_chain(settings.certfile, settings.keyfile, password=settings.password)
    if settings.cafile is not None:
        context.load_verify_locations(cafile=settings.cafile)
    if settings.fail_if_no_peer_cert:
        context.verify_mode = ssl.CERT_REQUIRED
    elif settings.verify_peer:
        context.verify_mode = ssl.CERT_OPTIONAL
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


def settings_from_mapping(data: dict[str, object]) -> TLSSettings:
    """TLSSettings from a TOML table (``[pigeon.tls]`` / ``[pigeon.management_tls]``)."""

    def path(key: str) -> Path | None:
        value = data.get(key)
        return Path(str(value)) if value else None

    certfile, keyfile = path("certfile"), path("keyfile")
    if certfile is None or keyfile is None:
        raise ValueError("TLS needs certfile and keyfile")
    password = data.get("password")
    return TLSSettings(
        certfile,
        keyfile,
        path("cafile"),
        bool(data.get("verify_peer")),
        bool(data.get("fail_if_no_peer_cert")),
        str(password) if password is not None else None,
    )
