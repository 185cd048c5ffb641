"""Certificates for the MQTT TLS tests, made with ``cryptography``: a CA, the server's
certificate for 127.0.0.1, and client certificates with the subjects a test needs."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Issuer:
    pair: Pair
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def subject(common_name: str, *, organization: str | None = None) -> x509.Name:
    """``C=GB, O=organization, CN=common_name`` (RFC 4514: ``CN=...,O=...,C=GB``)."""
    parts = [x509.NameAttribute(NameOID.COUNTRY_NAME, "GB")] if organization else []
    if organization:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    parts.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(parts)


def _write(
    folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Pair:
    pair = Pair(folder / f"{stem}.crt", folder / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pair


def _builder(
    name: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def authority(folder: Path) -> Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    name = subject("Pigeon MQTT test CA")
    cert = (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issuer(_write(folder, "ca", cert, key), cert, key)


def issue(folder: Path, stem: str, name: x509.Name, ca: Issuer, *, server: bool = False) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(name, ca.cert.subject, key).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return _write(folder, stem, builder.sign(ca.key, hashes.SHA256()), key)


def client_context(ca: Issuer, pair: Pair | None = None) -> ssl.SSLContext:
    """A client's TLS context: trusts the test CA, presents ``pair`` if given."""
    context = ssl.create_default_context(cafile=str(ca.pair.cert))
    if pair is not None:
        context.load_cert_chain(pair.cert, pair.key)
    return context
