from setuptools import find_packages, setup

setup(
    name="ekws",
    version="0.1.0",
    description="eKuiper's WebSocket source connector as a Python SDK and small service",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["ekws", "ekws.*"]),
    package_data={"ekws": ["py.typed"], "ekws.service": ["openapi.json"]},
    install_requires=[
        "websocket-client>=1.6",
        "simple-websocket>=1.0",
        "werkzeug>=2.3",
        "PyYAML>=6.0",
    ],
    extras_require={
        "fast": ["orjson>=3.8"],
        "test": [
            "pytest>=7",
            "pytest-timeout>=2.1",
            "hypothesis>=6",
            "trustme>=1.0",
            "websockets>=13",
            "psutil>=5.9",
            "ruff>=0.5",
            "mypy>=1.8",
            "types-PyYAML",
            # Fuzzes the REST API against its OpenAPI document; this version needs Python 3.11+
            # (the test is skipped, saying so, on older Pythons).
            'schemathesis==4.32.5; python_version >= "3.11"',
        ],
    },
    entry_points={"console_scripts": ["ekws = ekws.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Typing :: Typed",
    ],
)
