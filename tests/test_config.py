"""Tests for ekws.config: shipped files, overlay, env overrides and error messages."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ekws.config import (
    Reconnect,
    ServerConfig,
    ServiceConfig,
    SourceProps,
    TlsConfig,
    WebsocketConfig,
    load_service_config,
    load_websocket_config,
    websocket_config_from_dict,
)
from ekws.errors import ConfigError

ETC = Path(__file__).resolve().parent.parent / "etc"


def write_source(config_dir: Path, text: str) -> Path:
    path = config_dir / "sources" / "websocket.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> WebsocketConfig:
    write_source(tmp_path, text)
    return load_websocket_config(tmp_path, environ or {})


def error_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, environ)
    return info.value


# --------------------------------------------------------------------------- shipped files


def test_shipped_websocket_yaml_loads() -> None:
    config = load_websocket_config(ETC, {})
    assert config.path == str(ETC / "sources" / "websocket.yaml")
    default = config.props(None)
    assert default.is_server and default.addr == ""
    assert default.buffer_length == 1024 and default.overflow == "block"
    assert config.server == ServerConfig("0.0.0.0", 10081, None)


def test_shipped_ekws_yaml_loads() -> None:
    service = load_service_config(ETC, {})
    assert (service.rest_ip, service.rest_port, service.auth_token) == ("127.0.0.1", 9081, None)
    assert service.log_level == "INFO"
    assert service.data_dir == str(ETC.parent / "data")
    assert service.streams == (
        'CREATE STREAM websocketDemo() WITH (DATASOURCE="/api/data", FORMAT="json", TYPE="websocket")',)
    assert service.rules == (
        {"id": "websocketDemoLog", "sql": "SELECT * FROM websocketDemo", "actions": [{"log": {}}]},)


def test_shipped_commented_remote_key_is_valid(tmp_path: Path) -> None:
    text = (ETC / "sources" / "websocket.yaml").read_text(encoding="utf-8")
    text = text.replace("# remote:\n#   addr: 127.0.0.1:8080\n#   scheme: ws",
                        "remote:\n  addr: 127.0.0.1:8080\n  scheme: ws")
    remote = load(tmp_path, text).props("remote")
    assert remote.addr == "127.0.0.1:8080" and not remote.is_server


def test_no_config_dir_gives_defaults() -> None:
    config = load_websocket_config(None, {})
    assert config == WebsocketConfig()
    assert config.props("DEFAULT") == SourceProps()


# --------------------------------------------------------------------------- overlay and names


def test_named_key_overlays_default(tmp_path: Path) -> None:
    config = load(tmp_path, """
        default:
          bufferLength: 10
          pingInterval: 20
          reconnect: {initialDelay: 0.5, maxRetries: 7}
        remote:
          addr: 127.0.0.1:8080
          reconnect: {maxDelay: 30}
    """)
    remote = config.props("remote")
    assert remote.name == "remote" and remote.addr == "127.0.0.1:8080"
    assert remote.buffer_length == 10 and remote.ping_interval == 20
    assert remote.reconnect == Reconnect(initial_delay=0.5, max_delay=30, max_retries=7)
    assert config.props(None).addr == ""
    assert config.props(None).reconnect == Reconnect(initial_delay=0.5, max_delay=10.0, max_retries=7)


def test_conf_keys_and_props_are_case_insensitive(tmp_path: Path) -> None:
    config = load(tmp_path, """
        Default: {BUFFERLENGTH: 3}
        Remote:
          ADDR: localhost:9
          Reconnect: {MAXRETRIES: 2}
        SOURCE: {httpserverport: 0}
    """)
    assert config.props("remote") is config.props("REMOTE")
    assert config.props("remote").addr == "localhost:9"
    assert config.props("remote").reconnect.max_retries == 2
    assert config.props("remote").buffer_length == 3
    assert config.props(None).name == "Default"
    assert config.server.http_server_port == 0


def test_unknown_conf_key_lists_known(tmp_path: Path) -> None:
    config = load(tmp_path, "default: {}\nremote: {addr: 'h:1'}\n")
    with pytest.raises(ConfigError) as info:
        config.props("nope")
    message = str(info.value)
    assert "websocket.yaml" in message and "nope" in message
    assert "default" in message and "remote" in message
    assert info.value.key == "nope"


def test_every_prop_is_parsed(tmp_path: Path) -> None:
    config = load(tmp_path, """
        default:
          addr: "[::1]:8080"
          scheme: WSS
          requestHeader:
            Authorization: Bearer t
            X-Tag: [a, b]
            X-Version: 2
          subprotocols: "json, mqtt"
          insecureSkipVerify: true
          rootCaPath: /ca.pem
          certificationPath: /c.pem
          privateKeyPath: /k.pem
          tlsMinVersion: 1.3
          connectTimeout: 500ms
          reconnect: {initialDelay: 250ms, maxDelay: 1m, maxRetries: 5}
          pingInterval: 1h
          pingTimeout: 2s
          openMessages: ['{"subscribe": "a,b"}', hello]
          maxMessageSize: 64KB
          maxConnections: 8
          allowedOrigins: [https://a.example, https://b.example]
          authToken: secret
          bufferLength: 1
          overflow: DROPOLDEST
        source:
          httpServerIp: 127.0.0.1
          httpServerPort: 65535
          httpServerTls: {certfile: /s.crt, keyfile: /s.key, clientCaFile: /ca.crt}
    """)
    assert config.props(None) == SourceProps(
        name="default", addr="[::1]:8080", scheme="wss",
        request_header=(("Authorization", "Bearer t"), ("X-Tag", "a"), ("X-Tag", "b"), ("X-Version", "2")),
        subprotocols=("json", "mqtt"), insecure_skip_verify=True, root_ca_path="/ca.pem",
        certification_path="/c.pem", private_key_path="/k.pem", tls_min_version="1.3",
        connect_timeout=0.5, reconnect=Reconnect(0.25, 60.0, 5), ping_interval=3600.0, ping_timeout=2.0,
        open_messages=('{"subscribe": "a,b"}', "hello"), max_message_size=65536, max_connections=8,
        allowed_origins=("https://a.example", "https://b.example"), auth_token="secret",
        buffer_length=1, overflow="dropOldest")
    assert config.server == ServerConfig("127.0.0.1", 65535, TlsConfig("/s.crt", "/s.key", "/ca.crt"))


@pytest.mark.parametrize(("text", "size"), [(1000, 1000), ("1MB", 1 << 20), ("1MiB", 1 << 20),
                                            ("2 kb", 2048), ("512B", 512), ("1.5K", 1536)])
def test_sizes(tmp_path: Path, text: Any, size: int) -> None:
    config = load(tmp_path, yaml.safe_dump({"default": {"maxMessageSize": text}}))
    assert config.props(None).max_message_size == size


def test_tls_files_are_not_opened(tmp_path: Path) -> None:
    config = load(tmp_path, "source: {httpServerTls: {certfile: /no/such.crt, keyfile: /no/such.key}}\n")
    assert config.server.http_server_tls == TlsConfig("/no/such.crt", "/no/such.key")


# --------------------------------------------------------------------------- environment


def test_env_overrides_with_nesting_and_types(tmp_path: Path) -> None:
    config = load(tmp_path, "default: {addr: ''}\nRemote: {addr: 'h:1'}\n", {
        "WEBSOCKET__DEFAULT__ADDR": "1.2.3.4:80",
        "WEBSOCKET__SOURCE__HTTPSERVERPORT": "10082",
        "WEBSOCKET__DEFAULT__RECONNECT__MAXRETRIES": "3",
        "WEBSOCKET__REMOTE__INSECURESKIPVERIFY": "true",
        "WEBSOCKET__REMOTE__CONNECTTIMEOUT": "1.5",
        "WEBSOCKET__REMOTE__AUTHTOKEN": "12345",
        "WEBSOCKET__REMOTE__SUBPROTOCOLS": "a,b",
        "WEBSOCKET__REMOTE__OPENMESSAGES": '["x,y", "z"]',
        "WEBSOCKET__REMOTE__REQUESTHEADER__X-Key": "007",
        "WEBSOCKET__SOURCE__HTTPSERVERTLS__CERTFILE": "/x",
        "WEBSOCKET__SOURCE__HTTPSERVERTLS__KEYFILE": "/y",
        "OTHER__DEFAULT__ADDR": "ignored",
    })
    assert config.props(None).addr == "1.2.3.4:80"
    assert config.props(None).reconnect.max_retries == 3
    remote = config.props("remote")
    assert remote.addr == "h:1" and remote.reconnect.max_retries == 3
    assert remote.insecure_skip_verify is True and remote.connect_timeout == 1.5
    assert remote.auth_token == "12345"  # string props stay verbatim
    assert remote.subprotocols == ("a", "b") and remote.open_messages == ("x,y", "z")
    assert remote.request_header == (("X-Key", "007"),)
    assert config.server.http_server_port == 10082
    assert config.server.http_server_tls == TlsConfig("/x", "/y")


def test_env_naming_an_unknown_conf_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "default: {addr: ''}\nremote: {addr: 'h:1'}\n",
             {"WEBSOCKET__DEFUALT__ADDR": "1.2.3.4:80"})
    message = str(info.value)
    assert info.value.file == "WEBSOCKET__DEFUALT__ADDR"
    assert "'DEFUALT'" in message and "known conf keys: default, remote" in message
    # default exists even when the file does not name it
    assert load_websocket_config(None, {"WEBSOCKET__DEFAULT__ADDR": "h:2"}).props(None).addr == "h:2"


def test_ping_timeout_must_be_below_ping_interval(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "default: {pingInterval: 5s, pingTimeout: 5s}\n")
    assert info.value.key == "default.pingTimeout" and "below pingInterval" in str(info.value)
    with pytest.raises(ConfigError):
        load(tmp_path, "default: {pingTimeout: 1m}\n")  # above the default interval
    lone = load(tmp_path, "default: {pingInterval: 4s}\nfast: {pingInterval: 1s}\n")
    assert lone.props(None).ping_timeout == 2.0 and lone.props("fast").ping_timeout == 0.5
    off = load(tmp_path, "default: {pingInterval: 0, pingTimeout: 1m}\n")  # no pings: no rule
    assert off.props(None).ping_timeout == 60.0


@pytest.mark.parametrize(("var", "value", "key", "expected"), [
    ("WEBSOCKET__DEFAULT__BUFFERLENGTH", "many", "default.bufferLength", "integer"),
    ("WEBSOCKET__DEFAULT__NOSUCH", "1", "default.NOSUCH", "unknown prop"),
    ("WEBSOCKET__SOURCE__HTTPSERVERPORT", "70000", "source.httpServerPort", "out of range"),
    ("WEBSOCKET__DEFAULT__RECONNECT", "3", "default.reconnect", "map"),
    ("WEBSOCKET__DEFAULT__ADDR__X", "3", "default.addr", "not a map"),
])
def test_env_errors_name_the_variable(var: str, value: str, key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_websocket_config(None, {var: value})
    assert info.value.file == var and info.value.key == key
    assert var in str(info.value) and key in str(info.value) and expected in str(info.value)


def test_service_config_env_and_data_dir(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "ekws.yaml").write_text("restPort: 1\ndataDir: store\nlogLevel: warn\n")
    service = load_service_config(tmp_path / "etc", {"EKWS__RESTPORT": "0", "EKWS__AUTHTOKEN": "007"})
    assert service.rest_port == 0 and service.auth_token == "007"
    assert service.data_dir == str(tmp_path / "store") and service.log_level == "WARNING"
    assert load_service_config(tmp_path / "missing", {}) == ServiceConfig(
        data_dir=str(tmp_path / "data"))
    with pytest.raises(ConfigError, match="ekws.yaml:restPort: .*integer"):
        (tmp_path / "etc" / "ekws.yaml").write_text("restPort: nine\n")
        load_service_config(tmp_path / "etc", {})


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("body", "key", "expected"), [
    ("default: {adr: 'h:1'}", "default.adr", "unknown prop 'adr'"),
    ("remote: {reconnect: {maxRetries: '3'}}", "remote.reconnect.maxRetries", "an integer >= 0, got str"),
    ("remote: {addr: [a]}", "remote.addr", "host:port"),
    ("remote: {addr: 'h:70000'}", "remote.addr", "port 70000 is out of range"),
    ("remote: {addr: 'ws://h:1'}", "remote.addr", "scheme"),
    ("remote: {addr: '::1:80'}", "remote.addr", "[::1]:8080"),
    ("remote: {scheme: http}", "remote.scheme", "one of ws | wss"),
    ("remote: {overflow: dropAll}", "remote.overflow", "block | dropOldest | dropNewest"),
    ("remote: {connectTimeout: 5 minutes}", "remote.connectTimeout", "'500ms'"),
    ("remote: {reconnect: {initialDelay: -1}}", "remote.reconnect.initialDelay", "duration >= 0"),
    ("remote: {bufferLength: 0}", "remote.bufferLength", "out of range"),
    ("remote: {maxMessageSize: 1TB}", "remote.maxMessageSize", "'64KB'"),
    ("remote: {tlsMinVersion: '1.4'}", "remote.tlsMinVersion", "'1.3'"),
    ("remote: {insecureSkipVerify: yes please}", "remote.insecureSkipVerify", "true or false"),
    ("remote: {requestHeader: {'Bad Name': x}}", "remote.requestHeader.Bad Name", "header name"),
    ("remote: {addr: 'h:1', ADDR: 'h:2'}", "remote.ADDR", "twice"),
    ("remote: [1, 2]", "remote", "a map of props"),
    ("source: {httpServerPort: 65536}", "source.httpServerPort", "out of range"),
    ("source: {httpServerTls: {certfile: /c}}", "source.httpServerTls.keyfile", "keyfile"),
])
def test_errors_name_file_and_key(tmp_path: Path, body: str, key: str, expected: str) -> None:
    error = error_of(tmp_path, body + "\n")
    assert error.file == str(tmp_path / "sources" / "websocket.yaml")
    assert error.key == key
    assert str(error).startswith(f"{error.file}:{key}: ")
    assert expected in str(error)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"websocket\.yaml: file not found") as info:
        load_websocket_config(tmp_path, {})
    assert info.value.file == str(tmp_path / "sources" / "websocket.yaml")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    error = error_of(tmp_path, "default:\n  addr: ''\n  overflow: block: x\nsource: {}\n")
    assert error.file == str(tmp_path / "sources" / "websocket.yaml")
    assert "YAML syntax error at line 3, column 18" in str(error)
    assert isinstance(error.__cause__, yaml.YAMLError)


def test_top_level_must_be_a_map(tmp_path: Path) -> None:
    assert "a map of conf keys" in str(error_of(tmp_path, "- a\n- b\n"))
    assert load(tmp_path, "# only comments\n") == WebsocketConfig(
        path=str(tmp_path / "sources" / "websocket.yaml"))


# --------------------------------------------------------------------------- robustness

PROP_NAMES = ["addr", "scheme", "requestHeader", "subprotocols", "insecureSkipVerify", "rootCaPath",
              "tlsMinVersion", "connectTimeout", "reconnect", "initialDelay", "maxDelay", "maxRetries",
              "pingInterval", "pingTimeout", "openMessages", "maxMessageSize", "maxConnections",
              "allowedOrigins", "authToken", "bufferLength", "overflow", "httpServerPort",
              "httpServerTls", "certfile", "keyfile"]
scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | st.sampled_from(["", "1.2", "10s", "64KB", "h:1", "[::1]:80", "ws", "block", "-1"]))
names = st.sampled_from(PROP_NAMES) | st.text(max_size=8) | st.integers()
garbage = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(names, inner, max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(conf=st.sampled_from(["default", "remote", "source"]),
       props=st.dictionaries(names, garbage, max_size=5),
       env=st.dictionaries(st.sampled_from([f"WEBSOCKET__{conf}__{name.upper()}"
                                            for conf in ("DEFAULT", "REMOTE", "SOURCE")
                                            for name in [*PROP_NAMES, "RECONNECT__MAXDELAY",
                                                         "HTTPSERVERTLS__KEYFILE", "REQUESTHEADER__X"]]),
                           st.text(max_size=8), max_size=3))
def test_garbage_only_raises_config_error(conf: str, props: dict[Any, Any], env: dict[str, str]) -> None:
    data = yaml.safe_load(yaml.safe_dump({conf: props}))  # only what YAML can carry
    try:
        config = websocket_config_from_dict(data, path="garbage.yaml", environ=env)
    except ConfigError as exc:
        assert exc.file in ("garbage.yaml", *env)
        return
    assert isinstance(config.props(None), SourceProps)
