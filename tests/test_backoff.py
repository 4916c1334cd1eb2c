import itertools

import pytest

from ekws.backoff import backoff, should_retry
from ekws.errors import ConfigError, ConnectError


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_lower_half():
    top = list(itertools.islice(backoff(0.1, 1.0, rng=lambda: 1.0), 6))
    assert top == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    bottom = list(itertools.islice(backoff(0.1, 1.0, rng=lambda: 0.0), 3))
    assert bottom == pytest.approx([0.05, 0.1, 0.2])


def test_backoff_from_zero_goes_to_the_cap():
    assert list(itertools.islice(backoff(0.0, 2.0, rng=lambda: 1.0), 3)) == [0.0, 2.0, 2.0]


def test_should_retry_forever_by_default_and_never_on_config_errors():
    assert should_retry(ConnectError("x"), 10_000, 0)
    assert should_retry(OSError("x"), 1, 0)
    assert not should_retry(ConfigError("bad"), 1, 0)
    assert should_retry(ConnectError("x"), 2, 3)
    assert not should_retry(ConnectError("x"), 3, 3)
