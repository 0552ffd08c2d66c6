"""Log output of a real ``safebot console`` run: the level it is given, and JSON lines."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from safebot.ops.logformat import JsonFormatter, configure_logging
from safebot.settings import SettingsError, load_settings

REPO = Path(__file__).resolve().parents[1]
REPORT = [
    "hi",
    "Tell the moderators",
    "Start a report",
    "Demo Server",
    "Asking me for money",
    "scammer_marker_71",
    "He wants $500 or he'll post details_marker_72",
    "skip",
    "Keep me anonymous",
    "Send the report",
    ":mod ack",
]


def console(tmp_path: Path, config: str | None) -> subprocess.CompletedProcess[str]:
    args = ["--db", str(tmp_path / "c.db")]
    if config is not None:
        (tmp_path / "c.toml").write_text(config)
        args += ["--config", str(tmp_path / "c.toml")]
    result = subprocess.run(
        [sys.executable, "-m", "safebot.cli", "console", *args],
        input="\n".join(REPORT) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert "reference is R-" in result.stdout
    return result


def test_console_writes_json_lines_at_the_configured_level(tmp_path: Path) -> None:
    result = console(tmp_path, 'log_level = "INFO"\nlog_format = "json"\n')
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert entries, "no log lines at INFO"
    for entry in entries:
        assert set(entry) == {"time", "level", "logger", "message"}
        assert entry["time"].endswith("+00:00")
    assert any(
        e["logger"] == "safebot.service" and e["level"] == "INFO" and "stored" in e["message"]
        for e in entries
    )
    assert "marker_7" not in result.stderr


def test_console_honours_a_quieter_level_and_stays_quiet_without_a_config(
    tmp_path: Path,
) -> None:
    assert console(tmp_path, 'log_level = "WARNING"\n').stderr == ""
    (tmp_path / "demo").mkdir()
    assert console(tmp_path / "demo", None).stderr == ""


def test_text_format_at_debug(tmp_path: Path) -> None:
    result = console(tmp_path, 'log_level = "debug"\n')
    assert " DEBUG " in result.stderr and " INFO safebot.service: report R-" in result.stderr
    assert "marker_7" not in result.stderr


def test_an_exception_stays_on_one_line() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("INFO", "json", out)
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("safebot.test").exception("it failed")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    [line] = out.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "it failed" and "ValueError: boom" in entry["exception"]
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)


def test_bad_log_settings_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('log_format = "xml"\nlog_level = "LOUD"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    assert len(caught.value.problems) == 2
