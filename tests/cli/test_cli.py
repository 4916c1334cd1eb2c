"""The `ekws` command as a user runs it: real subprocesses, a real service, real peers."""

from __future__ import annotations

import base64
import json
import math
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.service import DEMO, DEMO_RULE, ENV, REPO, Lines, Service, log_rule, write_etc
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

SEED = 'ekws CREATE STREAM demo\'() with(format="json", datasource="/api/data", type="websocket")\''


def ekws(*args, env=None, cwd=None, timeout=30):
    return subprocess.run(
        [sys.executable, "-m", "ekws", *args],
        capture_output=True,
        text=True,
        env={**ENV, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


def created(name: str) -> str:
    """bin/kuiper's sentence (internal/server/rpc.go CreateRule), with ekws for bin/kuiper."""
    return (f"Rule {name} was created successfully, please use 'ekws getstatus rule {name}' command to get "
            "rule status.")


def strict_json(line: str):
    def refuse(token):
        raise AssertionError(f"{token} is not JSON: {line!r}")

    return json.loads(line, parse_constant=refuse)


# -- help, usage, python -m ekws ----------------------------------------------------------------


def test_help_describes_the_commands_and_exit_codes():
    out = ekws("--help")
    assert out.returncode == 0
    for text in (
        "ekws run",
        "create stream NAME",
        "show streams",
        "describe stream NAME",
        "drop stream NAME",
        "create rule NAME '<rule json>'",
        "create rule NAME -f FILE",
        "show rules",
        "describe rule NAME",
        "drop rule NAME",
        "start|stop|restart rule NAME",
        "getstatus rule NAME",
        "check websocket",
        "--host",
        "--port",
        "EKWS_TOKEN",
        "exit codes",
        "CREATE STREAM demo'()",
    ):
        assert text in out.stdout, text


def test_run_help_gives_output_format_environment_and_exit_codes():
    out = ekws("run", "--help")
    assert out.returncode == 0
    for text in (
        '{"data": {...}, "meta"',
        "base64",
        "NaN and Infinity are null",
        "WEBSOCKET__<CONFKEY>__<PROP>",
        "EKWS__<PROP>",
        "exit codes",
        "2  bad configuration",
    ):
        assert text in out.stdout, text


def test_usage_errors_exit_2():
    for args in (
        (),
        ("frobnicate",),
        ("create", "table", "x"),
        ("drop", "stream"),
        ("--port", "x", "show", "streams"),
        ("check", "websocket", "{bad"),
        ("run", "--nope"),
        ("create", "rule", "r1"),
        ("create", "rule", "r1", "{bad"),
        ("create", "rule", "r1", "[1]"),
        ("create", "rule", "r1", '{"id": "r2", "sql": "SELECT * FROM demo", "actions": [{"log": {}}]}'),
        ("create", "rule", "r1", "-f", "/nonexistent/rule.json"),
        ("show", "rules", "extra"),
        ("describe", "rule"),
        ("start", "stream", "x"),
        ("getstatus", "rule", "a", "b"),
    ):
        out = ekws(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.strip() and "Traceback" not in out.stderr


def test_a_service_that_is_not_running_is_one_clear_line():
    out = ekws("--port", "1", "show", "streams")
    assert out.returncode == 1
    assert out.stderr.startswith("ekws: cannot reach ekws at 127.0.0.1:1: is `ekws run` running?")
    assert len(out.stderr.strip().splitlines()) == 1


# -- ekws run: start-up errors -------------------------------------------------------------------


def test_a_config_dir_that_does_not_exist_says_so(tmp_path):
    out = ekws("run", "-c", str(tmp_path / "nope"))
    assert out.returncode == 2
    assert f"config dir '{tmp_path / 'nope'}' does not exist" in out.stderr


def test_a_missing_ekws_yaml_is_named(tmp_path):
    etc = write_etc(tmp_path)
    (etc / "ekws.yaml").unlink()
    out = ekws("run", "-c", str(etc))
    assert out.returncode == 2
    assert f"{etc / 'ekws.yaml'}: file not found" in out.stderr and "websocket.yaml" not in out.stderr


def test_a_bad_log_level_gets_the_same_clean_message_from_the_flag_and_the_file(tmp_path):
    etc = write_etc(tmp_path)
    flag = ekws("run", "-c", str(etc), "--log-level", "verbose")
    (etc / "ekws.yaml").write_text(
        (etc / "ekws.yaml").read_text().replace("logLevel: INFO", "logLevel: verbose")
    )
    file = ekws("run", "-c", str(etc))
    assert flag.returncode == file.returncode == 2
    assert "Traceback" not in flag.stderr + file.stderr
    assert flag.stderr.startswith("ekws: --log-level: expected")
    assert file.stderr.startswith(f"ekws: {etc / 'ekws.yaml'}:logLevel: expected")
    assert flag.stderr.split(": expected", 1)[1] == file.stderr.split(": expected", 1)[1]


def test_a_bad_declared_stream_names_the_file_and_the_entry(tmp_path):
    etc = write_etc(tmp_path, streams=(DEMO, 'CREATE STREAM x() WITH (DATASORCE="/x")'))
    out = ekws("run", "-c", str(etc))
    assert out.returncode == 2
    assert f"ekws: {etc / 'ekws.yaml'}: streams[1]: unknown option 'DATASORCE'" in out.stderr
    assert "at line 1, column 25" in out.stderr


def test_a_busy_port_is_a_clean_message_and_exit_1(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = ekws(
            "run", "-c", str(write_etc(tmp_path)), env={"WEBSOCKET__SOURCE__HTTPSERVERPORT": str(port)}
        )
    assert out.returncode == 1
    assert (
        f"ekws: cannot bind 127.0.0.1:{port}" in out.stderr
        or f"127.0.0.1:{port}" in out.stderr.splitlines()[-1]
    )
    assert "Traceback" not in out.stderr


# -- ekws run: output ------------------------------------------------------------------------------


def test_the_shipped_etc_serves_the_demo_stream_and_prints_json_lines(tmp_path):
    shutil.copytree(REPO / "etc", tmp_path / "etc")
    env = {
        "WEBSOCKET__SOURCE__HTTPSERVERPORT": "0",
        "WEBSOCKET__SOURCE__HTTPSERVERIP": "127.0.0.1",
        "EKWS__RESTPORT": "0",
    }
    with Service(tmp_path / "etc", env=env) as svc:
        assert "/api/data" in svc.err.text
        with connect(f"ws://127.0.0.1:{svc.ws_port}/api/data", open_timeout=5) as ws:
            ws.send(json.dumps({"temperature": 23.5}))
            ws.send(json.dumps([{"n": 1}, {"n": 2}]))
            svc.out.wait_count(3)
            assert svc.stop() == 0
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    records = [strict_json(line) for line in svc.out.lines]
    assert [r["data"] for r in records] == [{"temperature": 23.5}, {"n": 1}, {"n": 2}]
    assert records[0]["meta"]["stream"] == "websocketDemo" and records[0]["meta"]["datasource"] == "/api/data"
    assert (tmp_path / "data" / "ekws.db").exists()


def test_stdout_is_always_valid_json_lines_binary_as_base64_and_no_nan(tmp_path):
    binary = 'CREATE STREAM bin() WITH (DATASOURCE="/bin", FORMAT="binary")'
    with Service(write_etc(tmp_path, streams=(DEMO, binary), rules=[DEMO_RULE, log_rule("bin")])) as svc:
        with connect(f"ws://127.0.0.1:{svc.ws_port}/api/data", open_timeout=5) as ws:
            ws.send('{"big": 1e400, "small": -1e400, "ok": 1.5}')
            svc.out.wait_count(1)
        with connect(f"ws://127.0.0.1:{svc.ws_port}/bin", open_timeout=5) as ws:
            ws.send(b"\x00\xff\x10binary")
            ws.send("text as binary")
            svc.out.wait_count(3)
        assert svc.stop() == 0
    first, second, third = (strict_json(line) for line in svc.out.lines)
    assert first["data"] == {"big": None, "small": None, "ok": 1.5}
    assert base64.b64decode(second["data"]["self"]) == b"\x00\xff\x10binary"
    assert base64.b64decode(third["data"]["self"]) == b"text as binary"
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in first["data"].values())


def test_a_closed_stdout_ends_the_run_with_exit_0_and_one_stderr_line_at_most(tmp_path):
    etc = write_etc(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ekws", "run", "-c", str(etc)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        err = Lines(proc.stderr)
        ready = err.wait_for(r"ready: .* ws://[\d.]+:(\d+)/api/data")
        with connect(f"ws://127.0.0.1:{ready.group(1)}/api/data", open_timeout=5) as ws:
            ws.send('{"n": 0}')
            assert strict_json(proc.stdout.readline())["data"] == {"n": 0}
            before = len(err.lines)
            proc.stdout.close()  # what `| head -n 1` does after its line
            try:
                for n in range(1, 200):
                    ws.send(json.dumps({"n": n}))
            except ConnectionClosed:
                pass
            assert proc.wait(10) == 0
        err.thread.join(5)
        after = err.lines[before:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert len(after) <= 1, after
    assert "Traceback" not in "".join(after) and "BrokenPipe" not in "".join(after)


def test_under_a_real_shell_pipe_to_head(tmp_path):
    etc = write_etc(
        tmp_path,
        streams=('CREATE STREAM c() WITH (DATASOURCE="/c", CONF_KEY="feeder")',),
        rules=[log_rule("c")],
        websocket_yaml=None,
    )
    # A client-mode stream dialling a local server that sends many records: `head -n 1` takes one.
    import threading

    from websockets.sync.server import serve

    def handler(ws):
        for n in range(500):
            ws.send(json.dumps({"n": n}))
        ws.recv()

    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        port = server.socket.getsockname()[1]
        (etc / "sources" / "websocket.yaml").write_text(
            f"default:\n  addr: ''\nfeeder:\n  addr: 127.0.0.1:{port}\n"
            "source:\n  httpServerIp: 127.0.0.1\n  httpServerPort: 0\n"
        )
        script = f"{sys.executable} -m ekws run -c {etc} --log-level WARNING | head -n 1; "
        script += 'echo "rc=${PIPESTATUS[0]}"'
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=ENV, timeout=30)
        server.shutdown()
        thread.join(10)
    lines = out.stdout.splitlines()
    assert strict_json(lines[0])["data"] == {"n": 0}
    assert lines[-1] == "rc=0"
    assert len(out.stderr.strip().splitlines()) <= 1, out.stderr


# -- kuiper-style commands against a running service ----------------------------------------------------


def test_every_stream_command_against_the_service(tmp_path):
    with Service(write_etc(tmp_path)) as svc:
        out = svc.cli(
            "create", "stream", "s1", '(temperature FLOAT, id BIGINT) WITH (DATASOURCE="/s1", FORMAT="json")'
        )
        assert (out.returncode, out.stdout.strip()) == (0, "Stream s1 is created.")
        file = tmp_path / "s2.txt"
        file.write_text('s2 () WITH (DATASOURCE="/s2")\n')
        assert svc.cli("create", "stream", "-f", str(file)).returncode == 0
        file.write_text(json.dumps({"sql": 'CREATE STREAM s3() WITH (DATASOURCE="/s3")'}))
        assert svc.cli("CREATE", "STREAM", "-f", str(file)).returncode == 0
        out = svc.cli("show", "streams")
        assert (out.returncode, out.stdout.split()) == (0, ["s1", "s2", "s3", "websocketDemo"])
        out = svc.cli("DESCRIBE", "Stream", "s1")
        assert out.returncode == 0
        assert (
            "temperature\tfloat" in out.stdout
            and "id\tbigint" in out.stdout
            and "DATASOURCE: /s1" in out.stdout
        )
        out = svc.cli("describe", "stream", "s1", "-json")  # kuiper's processor.DescribeToJson
        assert out.returncode == 0 and json.loads(out.stdout)["Fields"][0] == {"Name": "temperature",
                                                                               "Type": "float"}
        out = svc.cli("drop", "stream", "s1")
        assert (out.returncode, out.stdout.strip()) == (0, "Stream s1 is dropped.")
        out = svc.cli("drop", "stream", "s1")  # bin/kuiper's words (internal/server/rpc.go Stream)
        assert out.returncode == 1
        assert out.stderr.strip() == "Stream command error: Drop stream fails: stream s1 is not found."
        out = svc.cli("create", "stream", "bad", '() WITH (DATASORCE="/x")')
        assert out.returncode == 1 and "DATASORCE" in out.stderr and "column" in out.stderr
        out = svc.cli("drop", "stream", "websocketDemo")
        assert out.returncode == 1 and "declared in" in out.stderr


def test_every_rule_command_against_the_service(tmp_path):
    with Service(write_etc(tmp_path, rules=[])) as svc:
        out = svc.cli("show", "rules")
        assert (out.returncode, out.stdout.strip()) == (0, "No rule definitions are found.")
        # bin/kuiper's syntax: the JSON inline, or -f FILE; the NAME is the id.
        body = '{"sql": "SELECT * FROM websocketDemo", "actions": [{"log": {}}]}'
        out = svc.cli("create", "rule", "rule1", body)
        assert (out.returncode, out.stdout.strip()) == (0, created("rule1"))
        file = tmp_path / "rule.txt"
        tutorial = "SELECT temperature, humidity FROM websocketDemo WHERE temperature > 30"  # eKuiper's
        file.write_text(json.dumps({"sql": tutorial, "actions": [{"log": {}}]}, indent=2))
        out = svc.cli("CREATE", "Rule", "rule2", "-f", str(file))
        assert (out.returncode, out.stdout.strip()) == (0, created("rule2"))
        out = svc.cli("show", "RULES")
        assert out.returncode == 0 and [(r["id"], r["status"]) for r in json.loads(out.stdout)] == [
            ("rule1", "running"), ("rule2", "running")]
        out = svc.cli("describe", "rule", "rule2")
        assert out.returncode == 0 and json.loads(out.stdout)["sql"] == tutorial
        ws_port = int(svc.err.wait_for(r"listening on ws://127.0.0.1:(\d+)").group(1))
        with connect(f"ws://127.0.0.1:{ws_port}/api/data", open_timeout=5) as ws:
            ws.send('{"temperature": 20, "humidity": 1}')
            ws.send('{"temperature": 31, "humidity": 5, "x": 1}')
            lines = svc.out.wait_count(3)
        assert sorted((strict_json(line)["data"] for line in lines[:3]), key=str) == [
            {"humidity": 1, "temperature": 20}, {"humidity": 5, "temperature": 31, "x": 1},
            {"temperature": 31, "humidity": 5}]
        out = svc.cli("getstatus", "rule", "rule2")
        status = json.loads(out.stdout)
        assert out.returncode == 0 and status["status"] == "running"
        assert status["op_3_project_0_records_out_total"] == 1
        out = svc.cli("Stop", "rule", "rule2")
        assert (out.returncode, out.stdout.strip()) == (0, "Rule rule2 was stopped.")
        assert json.loads(svc.cli("getstatus", "rule", "rule2").stdout)["status"] == "stopped"
        out = svc.cli("start", "rule", "rule2")
        assert (out.returncode, out.stdout.strip()) == (0, "Rule rule2 was started")
        out = svc.cli("RESTART", "rule", "rule2")
        assert (out.returncode, out.stdout.strip()) == (0, "Rule rule2 was restarted.")
        out = svc.cli("drop", "stream", "websocketDemo")
        assert out.returncode == 1 and "declared in" in out.stderr
        out = svc.cli("drop", "rule", "rule2")
        assert (out.returncode, out.stdout.strip()) == (0, "Rule rule2 is dropped.")
        for verb in ("drop", "describe", "start", "stop", "restart", "getstatus"):
            out = svc.cli(verb, "rule", "rule2")
            assert out.returncode == 1 and "rule2" in out.stderr and "Traceback" not in out.stderr, verb
        out = svc.cli("create", "rule", "rule1", body)
        assert out.returncode == 1 and "already exists" in out.stderr
        out = svc.cli("create", "rule", "w", '{"sql": "SELECT count(*) FROM websocketDemo", '
                                            '"actions": [{"log": {}}]}')
        assert out.returncode == 1 and "COUNT" in out.stderr and "column 8" in out.stderr


def test_the_seeds_command_line_works_as_written(tmp_path):
    # No declared stream: the shipped demo stream already serves /api/data.
    with Service(write_etc(tmp_path, streams=())) as svc:
        script = f'ekws() {{ {sys.executable} -m ekws --port {svc.port} "$@"; }}; {SEED}'
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=ENV, timeout=30)
        assert (out.returncode, out.stdout.strip()) == (0, "Stream demo is created."), out.stderr
        rule = '{"sql": "SELECT * FROM demo", "actions": [{"log": {}}]}'  # eKuiper's first rule
        out = svc.cli("create", "rule", "r1", rule)
        assert (out.returncode, out.stdout.strip()) == (0, created("r1")), out.stderr
        status, body = svc.json("GET", "/streams/demo")
        assert status == 200 and body["Options"]["datasource"] == "/api/data"
        assert body["Options"]["format"] == "json" and body["Options"]["type"] == "websocket"
        ws_port = int(svc.err.wait_for(r"listening on ws://127.0.0.1:(\d+)").group(1))
        with connect(f"ws://127.0.0.1:{ws_port}/api/data", open_timeout=5) as ws:
            ws.send('{"seed": true}')
            svc.out.wait_for(r'"seed": true')


def test_the_token_comes_from_ekws_token_or_the_flag(tmp_path):
    with Service(write_etc(tmp_path, token="t0k")) as svc:
        out = svc.cli("show", "streams")
        assert out.returncode == 1 and "bearer token" in out.stderr
        assert svc.cli("show", "streams", env={"EKWS_TOKEN": "t0k"}).returncode == 0
        assert svc.cli("show", "streams", token="t0k").returncode == 0
        assert svc.stop() == 0
    assert "t0k" not in svc.err.text


def test_run_exits_0_on_sigint(tmp_path):
    with Service(write_etc(tmp_path)) as svc:
        assert svc.stop(signal.SIGINT) == 0


def test_main_returns_2_for_a_bad_config(tmp_path, capsys):
    from ekws.cli.main import main

    etc = write_etc(tmp_path)
    (etc / "sources" / "websocket.yaml").write_text("default:\n  addr: nothost\n")
    assert main(["run", "-c", str(etc)]) == 2
    err = capsys.readouterr().err
    assert "websocket.yaml" in err and "addr" in err


def test_python_dash_m_ekws_is_the_cli():
    out = ekws("--version")
    assert out.returncode == 0 and out.stdout.startswith("ekws ")
    assert Path(REPO / "ekws" / "__main__.py").exists()


def test_the_getting_started_window_rule_through_the_cli(tmp_path):
    # eKuiper's getting-started rule, created with bin/kuiper's syntax, fed by a real client.
    out_file = tmp_path / "avg.jsonl"
    sql = ("SELECT count(*), avg(temperature) as avg_temp, max(humidity) as max_hum from websocketDemo "
           "group by TUMBLINGWINDOW(ss, 5) HAVING avg_temp > 30;")
    with Service(write_etc(tmp_path, rules=[])) as svc:
        body = json.dumps({"sql": sql, "actions": [{"file": {"path": str(out_file)}}]})
        out = svc.cli("create", "rule", "myRule", body)
        assert (out.returncode, out.stdout.strip()) == (0, created("myRule"))
        ws_port = int(svc.err.wait_for(r"listening on ws://127.0.0.1:(\d+)").group(1))
        if time.time() % 5 > 3.5:  # send early in a window (they end at multiples of 5 s)
            time.sleep(5.05 - time.time() % 5)
        with connect(f"ws://127.0.0.1:{ws_port}/api/data", open_timeout=5) as ws:
            ws.send('{"temperature": 32, "humidity": 40}')
            ws.send('{"temperature": 33, "humidity": 45}')
        deadline = time.monotonic() + 8
        while not out_file.exists() or not out_file.read_text().strip():
            assert time.monotonic() < deadline, "no window was written"
            time.sleep(0.05)
        assert [json.loads(line) for line in out_file.read_text().splitlines()] == [
            [{"count": 2, "avg_temp": 32.5, "max_hum": 45}]]  # eKuiper's file sink: an array an emission
        out = svc.cli("getstatus", "rule", "myRule")
        assert out.returncode == 0 and json.loads(out.stdout)["op_2_window_0_records_out_total"] == 1
