"""A throwaway PKI made on the spot: a private CA, a server and a client certificate.

Made with the ``cryptography`` package when it is installed, else with the
``openssl`` command (``Missing`` is raised without either: callers skip).
Keys are EC P-256 and unencrypted; certificates live one day.  The server
certificate names ``localhost`` and ``127.0.0.1``.  bench/tls.py uses it too.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class Missing(Exception):
    """Neither the cryptography package nor the openssl command is available."""


@dataclass(frozen=True)
class Pki:
    ca: Path            # the private CA's certificate (what --cacert trusts)
    server_cert: Path   # signed by ca, for localhost and 127.0.0.1
    server_key: Path
    client_cert: Path   # signed by ca, for client authentication
    client_key: Path
    client_both: Path   # client certificate and key in one file
    other_ca: Path      # an unrelated CA: trusting it must fail


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        make = _Cryptography(folder)
    except ImportError:
        if shutil.which("openssl") is None:
            raise Missing("neither the cryptography package nor the openssl command") from None
        make = _OpenSSL(folder)   # type: ignore[assignment]
    make.ca("ca")
    make.ca("other-ca")
    make.leaf("server", "ca", server=True)
    make.leaf("client", "ca", server=False)
    both = folder / "client-both.pem"
    both.write_bytes((folder / "client.pem").read_bytes() + (folder / "client.key").read_bytes())
    return Pki(ca=folder / "ca.pem", server_cert=folder / "server.pem",
               server_key=folder / "server.key", client_cert=folder / "client.pem",
               client_key=folder / "client.key", client_both=both,
               other_ca=folder / "other-ca.pem")


class _Cryptography:
    def __init__(self, folder: Path) -> None:
        from cryptography import x509  # noqa: F401  (ImportError here selects openssl)

        self.folder = folder
        self.keys: dict[str, object] = {}
        self.certs: dict[str, object] = {}

    def _key(self, name: str) -> object:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        (self.folder / f"{name}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.keys[name] = key
        return key

    def _write(self, name: str, cert: object) -> None:
        from cryptography.hazmat.primitives import serialization

        self.certs[name] = cert
        (self.folder / f"{name}.pem").write_bytes(
            cert.public_bytes(serialization.Encoding.PEM))   # type: ignore[attr-defined]

    def _builder(self, subject: str, issuer: object, key: object) -> object:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        return (x509.CertificateBuilder().subject_name(name)
                .issuer_name(issuer or name)   # type: ignore[arg-type]
                .public_key(key.public_key())   # type: ignore[attr-defined]
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=1)))

    def ca(self, name: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        key = self._key(name)
        cert = (self._builder(f"loadgen test {name}", None, key)   # type: ignore[attr-defined]
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        self._write(name, cert)

    def leaf(self, name: str, issuer: str, server: bool) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID

        key = self._key(name)
        ca_cert, ca_key = self.certs[issuer], self.keys[issuer]
        builder = (self._builder(f"loadgen test {name}", ca_cert.subject,   # type: ignore
                                 key)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage(
                       [ExtendedKeyUsageOID.SERVER_AUTH if server
                        else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       ca_key.public_key()), critical=False))   # type: ignore[attr-defined]
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        self._write(name, builder.sign(ca_key, hashes.SHA256()))


class _OpenSSL:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.serial = 1000

    def _run(self, *args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60,
                       cwd=self.folder)

    def ca(self, name: str) -> None:
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                  "-nodes", "-days", "1", "-keyout", f"{name}.key", "-out", f"{name}.pem",
                  "-subj", f"/CN=loadgen test {name}",
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def leaf(self, name: str, issuer: str, server: bool) -> None:
        self.serial += 1
        extensions = ["basicConstraints=critical,CA:FALSE",
                      f"extendedKeyUsage={'serverAuth' if server else 'clientAuth'}"]
        if server:
            extensions.append("subjectAltName=DNS:localhost,IP:127.0.0.1")
        (self.folder / f"{name}.ext").write_text("\n".join(extensions) + "\n")
        self._run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", f"{name}.key", "-out", f"{name}.csr",
                  "-subj", f"/CN=loadgen test {name}")
        self._run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem",
                  "-CAkey", f"{issuer}.key", "-set_serial", str(self.serial), "-days", "1",
                  "-extfile", f"{name}.ext", "-out", f"{name}.pem")
