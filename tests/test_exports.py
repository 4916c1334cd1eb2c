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
