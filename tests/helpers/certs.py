"""Test PKI built with trustme: a CA, a server cert for 127.0.0.1/localhost, a client cert.

Everything is written as PEM files into a caller-provided directory (a pytest
``tmp_path``) so ekws can be pointed at them through its YAML config, and the
matching :class:`ssl.SSLContext` objects are built for the independent peers.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class Pki:
    """One CA with a server and a client leaf; paths are PEM files."""

    ca: trustme.CA
    server: trustme.LeafCert
    client: trustme.LeafCert
    ca_path: Path
    server_cert_path: Path
    server_key_path: Path
    client_cert_path: Path
    client_key_path: Path

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        """A server-side context presenting the server cert; optionally mutual TLS."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server.configure_cert(ctx)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client-side context trusting the CA (for helper clients in tests)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(ctx)
        return ctx


def make_pki(directory: Path, *, name: str = "pki") -> Pki:
    """Create a fresh CA, a server cert for 127.0.0.1/localhost and a client cert.

    Files are written under ``directory / name``; a second call with another
    ``name`` yields an unrelated CA (useful for failing-verification tests).
    """
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("ekws-client@example.org")
    base = directory / name
    base.mkdir(parents=True, exist_ok=True)
    pki = Pki(
        ca=ca,
        server=server,
        client=client,
        ca_path=base / "ca.pem",
        server_cert_path=base / "server.crt",
        server_key_path=base / "server.key",
        client_cert_path=base / "client.crt",
        client_key_path=base / "client.key",
    )
    ca.cert_pem.write_to_path(str(pki.ca_path))
    _write_chain(server, pki.server_cert_path)
    server.private_key_pem.write_to_path(str(pki.server_key_path))
    _write_chain(client, pki.client_cert_path)
    client.private_key_pem.write_to_path(str(pki.client_key_path))
    return pki


def _write_chain(leaf: trustme.LeafCert, path: Path) -> None:
    """Write the leaf certificate followed by its chain (trustme has no intermediates by default)."""
    path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
