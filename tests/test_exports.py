import ekws


def test_every_exported_name_exists_and_nothing_private_leaks():
    for name in ekws.__all__:
        assert hasattr(ekws, name), name
    assert not [n for n in ekws.__all__ if n.startswith("_") and n != "__version__"]


def test_every_error_derives_from_the_root():
    for name in ekws.__all__:
        obj = getattr(ekws, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, ekws.EkwsError), name
    assert issubclass(ekws.ConfigError, ValueError) and issubclass(ekws.DDLError, ValueError)


def test_state_is_an_exported_str_enum() -> None:
    import enum
    import json

    assert "State" in ekws.__all__
    assert issubclass(ekws.State, str) and issubclass(ekws.State, enum.Enum)
    assert [s.value for s in ekws.State] == ["connecting", "connected", "disconnected", "stopped",
                                             "peer_connected", "peer_disconnected"]  # server-mode peers
    state = ekws.State.CONNECTED
    assert state == "connected" and ekws.State("stopped") is ekws.State.STOPPED
    assert (str(state), f"{state}", f"{state:>10}", "%s" % (state,)) == (  # noqa: UP031 - logging's form
        "connected", "connected", " connected", "connected")
    assert json.dumps({"state": state}) == '{"state": "connected"}'
    # The wire modules' names still work, as members of the enum.
    from ekws.message import CONNECTED, CONNECTING, DISCONNECTED, PEER_CONNECTED, PEER_DISCONNECTED, STOPPED

    assert tuple(ekws.State) == (CONNECTING, CONNECTED, DISCONNECTED, STOPPED, PEER_CONNECTED,
                                 PEER_DISCONNECTED)


def test_help_opens_with_what_ekws_does_and_its_entry_points() -> None:
    import pydoc

    text = pydoc.render_doc(ekws, renderer=pydoc.plaintext)
    description = text[text.index("DESCRIPTION"):]
    head = description[: description.index("CLASSES") if "CLASSES" in description else None]
    assert "WebSocket" in text[: text.index("DESCRIPTION")]  # the NAME line says what it is
    positions = [head.find(word) for word in
                 ("Runtime", "create_stream", "subscribe", "Message", "State", "ekws run")]
    assert -1 not in positions, positions
    # Entry points come first; the exception classes are mentioned after them, if at all.
    first_error = min((head.find(n) for n in ("EkwsError", "DDLError", "BindError") if n in head),
                      default=len(head))
    assert max(positions) < first_error


def test_broadcaster_is_exported_with_runtime_broadcast() -> None:
    assert "Broadcaster" in ekws.__all__
    assert ekws.Broadcaster.__module__ == "ekws.wire.broadcast"
    assert callable(ekws.Runtime.broadcast)


def test_parse_error_is_exported_over_both_sql_front_ends() -> None:
    from ekws.errors import SQLError

    assert "ParseError" in ekws.__all__
    assert ekws.ParseError.__module__ == "ekws.errors"
    assert issubclass(ekws.DDLError, ekws.ParseError) and issubclass(SQLError, ekws.ParseError)
    with ekws.Runtime() as rt:
        try:
            rt.create_stream("CREATE STREAM")
        except ekws.ParseError as exc:  # one except clause catches a DDL error, with its position
            assert isinstance(exc, ekws.DDLError) and exc.line >= 1 and exc.column >= 1
        else:
            raise AssertionError("a bad DDL statement was accepted")
