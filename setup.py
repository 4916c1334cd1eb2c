from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="ekws",
    version="0.1.0",
    description="eKuiper's WebSocket source connector as a Python SDK and small service",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["ekws", "ekws.*"]),
    package_data={"ekws": ["py.typed"], "ekws.service.http": ["openapi.json", "status.html"]},
    # Lower bounds are the versions CI tests on the lowest Python
    # (.ci/constraints-lowest.txt). Upper bounds guard what reaches past a
    # dependency's public API: server.py subclasses simple-websocket's Server
    # (its ``ws`` and ``thread_class`` internals) and Werkzeug's server and
    # request handler.
    install_requires=[
        "websocket-client>=1.6,<2",
        "simple-websocket>=1.0,<1.2",
        "wsproto>=1.2,<2",  # imported directly by the server-mode upgrade
        "werkzeug>=2.3,<4",
        "PyYAML>=6.0.1,<7",
    ],
    extras_require={
        "fast": ["orjson>=3.8", "websockets>=12.0"],
        "mqtt": ["paho-mqtt>=2.0,<3"],
        "bench": ["aiohttp>=3.9,<4", "picows>=1.0,<3"],  # bench/ peers only
        # Test tools, pinned to ranges that behave as the suite expects on 3.9-3.13.
        "test": [
            "pytest>=7.4,<10",
            "pytest-timeout>=2.1,<3",
            "hypothesis>=6.80,<7",
            "trustme>=1.0,<2",
            "websockets>=15.0.1,<18",
            "psutil>=5.9,<8",
            "prometheus-client>=0.17,<1",
            "paho-mqtt>=2.0,<3",
            # Fuzzes the REST API against its OpenAPI document; this version needs Python 3.11+
            # (the test is skipped, saying so, on older Pythons).
            'schemathesis==4.32.5; python_version >= "3.11"',
        ],
        # Lint and type check, run on one Python in CI: exact versions, so a
        # new release's rules never turn a green tree red.
        "lint": [
            "ruff==0.17.6",
            "mypy==2.4.1",
            "types-PyYAML>=6.0.12",
        ],
    },
    entry_points={"console_scripts": ["ekws = ekws.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.9",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Operating System :: POSIX :: Linux",
        "Typing :: Typed",
    ],
)
