"""SASL mechanisms: PLAIN (RFC 4616) and EXTERNAL (RFC 4422 appendix A).

PLAIN carries ``[authzid] NUL authcid NUL passwd``. EXTERNAL takes the
identity the transport already proved: the subject of the client's TLS
certificate, verified against the configured CA. As RabbitMQ's
``rabbitmq_auth_mechanism_ssl``, the user name is the certificate's subject
CN (``ssl_cert_login_from = common_name``) or its whole subject as an RFC 4514
string (``distinguished_name``: ``CN=alice,O=Example,C=GB``). MQTT's
certificate logins use the same names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PLAIN = "PLAIN"
AMQPLAIN = "AMQPLAIN"
EXTERNAL = "EXTERNAL"

COMMON_NAME = "common_name"
DISTINGUISHED_NAME = "distinguished_name"

# OpenSSL's long names (as getpeercert() gives them) -> RFC 4514 / RabbitMQ's keys.
_DN_KEYS = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
    "emailAddress": "EMAILADDRESS",
    "serialNumber": "SERIALNUMBER",
    "surname": "SN",
    "givenName": "GIVENNAME",
    "title": "TITLE",
    "initials": "INITIALS",
    "pseudonym": "PSEUDONYM",
    "generationQualifier": "GENERATIONQUALIFIER",
}
_DN_SPECIAL = frozenset(',+"\\<>;')


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


def _escape_dn_value(value: str) -> str:
    """RFC 4514 §2.4: specials escaped, a leading space or '#' and a trailing space too;
    other ASCII control characters as ``\\XX``, as RabbitMQ writes them."""
    out = []
    for index, char in enumerate(value):
        if char in _DN_SPECIAL or (index == 0 and char in " #"):
            out.append("\\" + char)
        elif char == " " and index == len(value) - 1:
            out.append("\\ ")
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\{ord(char):02X}")
        else:
            out.append(char)
    return "".join(out)


def certificate_distinguished_name(certificate: Mapping[str, Any] | None) -> str | None:
    """The subject of a verified certificate as an RFC 4514 string, last RDN first
    (``CN=alice,O=Example,C=GB``), as RabbitMQ's ``ssl_cert_login_from =
    distinguished_name`` names users; None without a verified certificate."""
    if not certificate or not certificate.get("subject"):
        return None
    rdns = []
    for rdn in certificate["subject"]:
        parts = [f"{_DN_KEYS.get(key, key)}={_escape_dn_value(str(value))}" for key, value in rdn]
        rdns.append("+".join(parts))
    return ",".join(reversed(rdns))


def certificate_login_name(certificate: Mapping[str, Any] | None, source: str) -> str | None:
    """The user a verified certificate names, by ``ssl_cert_login_from``."""
    if source == DISTINGUISHED_NAME:
        return certificate_distinguished_name(certificate)
    return certificate_common_name(certificate)
