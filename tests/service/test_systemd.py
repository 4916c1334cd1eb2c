"""The unit as the README's recipe installs it passes `systemd-analyze verify`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "ekws.service"
README = REPO / "systemd" / "README.md"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (.ci/service-checks.sh installs it)",
)


def installed_root(tmp_path: Path, unit_text: str) -> Path:
    """A file-system root laid out as the recipe leaves it: /opt/ekws/venv/bin/ekws, the unit in /etc."""
    root = tmp_path / "root"
    system_units = next(
        p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()
    )
    shutil.copytree(system_units, root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    ekws = root / "opt" / "ekws" / "venv" / "bin" / "ekws"
    ekws.parent.mkdir(parents=True)
    ekws.write_text("#!/opt/ekws/venv/bin/python3\nfrom ekws.cli import main\nraise SystemExit(main())\n")
    ekws.chmod(0o755)
    kill = root / "bin" / "kill"  # ExecReload= (procps, in every Debian but minbase)
    kill.parent.mkdir(parents=True)
    kill.write_text("#!/bin/sh\n")
    kill.chmod(0o755)
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    (root / "etc" / "systemd" / "system" / "ekws.service").write_text(unit_text)
    return root


def verify(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "ekws.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_recipe_installs_what_the_unit_runs():
    recipe = README.read_text()
    exec_start = re.search(r"^ExecStart=(\S+) run -c (\S+)$", UNIT.read_text(), re.M)
    assert exec_start is not None
    assert exec_start.group(1) == "/opt/ekws/venv/bin/ekws" and exec_start.group(2) == "/etc/ekws"
    assert "sudo python3 -m venv /opt/ekws/venv" in recipe
    assert "sudo /opt/ekws/venv/bin/pip install '.[fast]'" in recipe
    assert "install -m 0644 systemd/ekws.yaml /etc/ekws/ekws.yaml" in recipe
    assert "systemctl edit" not in recipe.replace("(`systemctl\nedit`", "")  # needs a tty
    assert "install -m 0644 etc/sources/websocket.yaml /etc/ekws/sources/websocket.yaml" in recipe
    assert "install -m 0644 systemd/ekws.service /etc/systemd/system/ekws.service" in recipe


def test_the_unit_has_what_the_service_needs():
    unit = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "DynamicUser=yes",
        "StateDirectory=ekws",
        "ConfigurationDirectory=ekws",
        "Environment=EKWS__DATADIR=/var/lib/ekws",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RestartPreventExitStatus=2",
        "After=network.target\n",
        "MemoryDenyWriteExecute=yes",
        "ProcSubset=pid",
        "PrivateUsers=yes",
        "SystemCallFilter=~@privileged @resources",
    ):
        assert line in unit, line


def test_systemd_analyze_verify_passes_on_the_installed_unit(tmp_path):
    out = verify(installed_root(tmp_path, UNIT.read_text()))
    assert out.returncode == 0 and out.stdout + out.stderr == "", out.stdout + out.stderr


def test_systemd_analyze_verify_would_catch_a_broken_unit(tmp_path):
    out = verify(installed_root(tmp_path, UNIT.read_text().replace("Type=notify", "Type=notfy")))
    assert "Failed to parse service type" in out.stderr


def test_the_hardening_scores_ok():
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    score = re.search(r"Overall exposure level for ekws.service: ([\d.]+)", out.stdout + out.stderr)
    assert score is not None, out.stdout + out.stderr
    assert float(score.group(1)) <= 2.5
