"""SASL mechanisms: PLAIN (RFC 4616) and EXTERNAL (RFC 4422 appendix A).

PLAIN carries ``[authzid] NUL authcid NUL passwd``. EXTERNAL takes the
identity the transport already proved: the subject of the client's TLS
certificate, verified against the configured CA. As RabbitMQ's
``rabbitmq_auth_mechanism_ssl`` with ``ssl_cert_login_from = common_name``,
the certificate's CN is the user name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PLAIN = "PLAIN"
AMQPLAIN = "AMQPLAIN"
EXTERNAL = "EXTERNAL"


def parse_plain(response: bytes) -> tuple[str, str] | None:
    parts = response.split(b"\x00")
    if len(parts) != 3:
        return None
    _, username, password = parts
    try:
        return username.decode(), password.decode()
    except UnicodeDecodeError:
        return None


def certificate_common_name(certificate: Mapping[str, Any] | None) -> str | None:
    """The subject CN of a certificate as ``ssl.SSLSocket.getpeercert()`` gives it.

    None when there is no verified certificate (``getpeercert()`` is empty
    unless the chain was verified) or its subject has no single CN.
    """
    if not certificate:
        return None
    names = [
        value for rdn in certificate.get("subject", ()) for key, value in rdn if key == "commonName"
    ]
    if len(names) != 1 or not isinstance(names[0], str) or not names[0]:
        return None
    return names[0]
