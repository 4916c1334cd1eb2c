"""TLS contexts for client mode (wss) and the shared server (httpServerTls).

Certificate files are read here, when a source starts: a missing or unreadable
file is a :class:`~ekws.errors.ConfigError` naming the prop and the path.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from ..config import SourceProps, TlsConfig
from ..errors import ConfigError

TLS_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def client_context(props: SourceProps) -> ssl.SSLContext:
    """The context a wss client dials with, from a conf key's TLS props."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = _tls_version(props.tls_min_version, f"{props.name}.tlsMinVersion")
    if props.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif props.root_ca_path:
        _load(ctx.load_verify_locations, f"{props.name}.rootCaPath", props.root_ca_path)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if props.certification_path or props.private_key_path:
        if not (props.certification_path and props.private_key_path):
            raise ConfigError("a client certificate needs both certificationPath and privateKeyPath",
                              key=f"{props.name}.certificationPath")
        _load(lambda path: ctx.load_cert_chain(path, props.private_key_path),
              f"{props.name}.certificationPath/privateKeyPath", props.certification_path)
    return ctx


def check_client_files(props: SourceProps) -> None:
    """Load a client-mode ``wss`` conf key's TLS files now, as a dial would; ``ws`` and server mode: nothing.

    Raises:
        ConfigError: a file is missing or unreadable, naming the prop and the path.
    """
    if not props.is_server and props.scheme == "wss":
        client_context(props)


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """The context the shared server serves wss with; mutual TLS with a client CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(lambda path: ctx.load_cert_chain(path, tls.keyfile),
          "source.httpServerTls.certfile/keyfile", tls.certfile)
    if tls.client_ca_file:
        _load(ctx.load_verify_locations, "source.httpServerTls.clientCaFile", tls.client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _tls_version(value: str, key: str) -> ssl.TLSVersion:
    try:
        return TLS_VERSIONS[str(value)]
    except KeyError:
        raise ConfigError(f"expected one of {', '.join(TLS_VERSIONS)}, got {value!r}", key=key) from None


def _load(loader: Callable[[str], object], key: str, path: str) -> None:
    try:
        loader(path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load {path!r}: {exc}", key=key) from exc
