"""
Throwaway TLS material for tests: a certificate authority and a server
certificate it signs, made with C{cryptography} when a test runs, so that no
private key is ever committed.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from attrs import frozen
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet.endpoints import quoteStringArgument

# Certificates are valid from a little before now (clock skew) until a
# little after: long enough for any test run, useless afterwards.
_VALIDITY = datetime.timedelta(days=1)
_SKEW = datetime.timedelta(hours=1)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@frozen
class Authority:
    """A certificate authority: its key and its self-signed certificate."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def pem(self) -> bytes:
        """The CA certificate, PEM-encoded, as a client trusts it."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def new_authority(name: str = "twisted-chat test CA") -> Authority:
    """A new certificate authority called C{name}."""
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return Authority(key, certificate)


def issue_server_certificate(
    authority: Authority,
    hostnames: Sequence[str] = ("localhost",),
    addresses: Sequence[str] = ("127.0.0.1",),
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """
    A new key, and a server certificate for it signed by C{authority}, valid
    for C{hostnames} and the IP C{addresses}.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in hostnames]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in addresses]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
        )
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                authority.key.public_key()
            ),
            critical=False,
        )
        .sign(authority.key, hashes.SHA256())
    )
    return key, certificate


@frozen
class ServerFiles:
    """
    The PEM files of a TLS server: its private key, its certificate, and the
    certificate of the CA that signed it (for clients to trust).
    """

    key: str
    certificate: str
    ca: str

    def description(self, port: int = 0, interface: str = "127.0.0.1") -> str:
        """The C{ssl:} server endpoint description that serves with them."""
        return (
            f"ssl:{port}:interface={quoteStringArgument(interface)}"
            f":privateKey={quoteStringArgument(self.key)}"
            f":certKey={quoteStringArgument(self.certificate)}"
        )


def write_server_files(
    directory: str,
    authority: Authority,
    hostnames: Sequence[str] = ("localhost",),
    addresses: Sequence[str] = ("127.0.0.1",),
) -> ServerFiles:
    """
    Issue a server certificate from C{authority} and write it, its key and
    the CA certificate into C{directory}.
    """
    key, certificate = issue_server_certificate(authority, hostnames, addresses)
    base = Path(directory)
    files = ServerFiles(
        key=str(base / "server-key.pem"),
        certificate=str(base / "server-cert.pem"),
        ca=str(base / "ca.pem"),
    )
    Path(files.key).write_bytes(_pem_key(key))
    Path(files.key).chmod(0o600)
    Path(files.certificate).write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
    )
    Path(files.ca).write_bytes(authority.pem)
    return files
