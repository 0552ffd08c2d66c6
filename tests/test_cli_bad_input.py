"""The `safebot` command given what it cannot use: a database that cannot be opened, and
bytes on the console's stdin that are not UTF-8 under a strict locale. Each runs the real
command in a subprocess; the answer must be one clear line (or a kind reply), never a
traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "hunter2-secret"


def _free_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _bad_databases(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_bytes(b"these are my notes, not a database\n" * 200)
    return {
        "folder": str(folder),
        "not sqlite": str(not_sqlite),
        "unreachable postgres": f"postgresql://safebot:{PASSWORD}@127.0.0.1:{_free_port()}/safebot",
    }


def _run(
    args: list[str], env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "safebot.cli", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
    )


def _assert_one_clear_line(result: subprocess.CompletedProcess[bytes], what: str) -> None:
    err = result.stderr.decode("utf-8", "replace")
    lines = [line for line in err.splitlines() if line.strip()]
    assert result.returncode == 2, (what, result.returncode, err)
    assert len(lines) == 1, (what, err)
    assert "cannot open the database" in lines[0], (what, err)
    assert "Traceback" not in err and PASSWORD not in err, (what, err)


@pytest.mark.parametrize("command", ["console", "run discord", "run matrix"])
def test_a_database_that_cannot_be_opened_is_one_line_and_exit_2(
    tmp_path: Path, command: str
) -> None:
    env = {
        **os.environ,
        "SAFEBOT_DISCORD_TOKEN": "not-a-real-token",
        "SAFEBOT_MATRIX_PASSWORD": "not-a-real-password",
    }
    for name, database in _bad_databases(tmp_path).items():
        config = tmp_path / f"{command.replace(' ', '-')}.toml"
        config.write_text(
            f"database_url = {database!r}\n"
            "[matrix]\n"
            "homeserver = 'http://127.0.0.1:9'\n"
            "user_id = '@safebot:example.org'\n"
        )
        if command == "console":
            args = ["console", "--db", database]
        else:
            args = [*command.split(), "--config", str(config)]
        _assert_one_clear_line(_run(args, env), f"{command} with {name}")


def _strict_locale_env(**extra: str) -> dict[str, str]:
    """The environment of a minimal container: no UTF-8 anywhere, Python's UTF-8 mode off."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHON"))}
    return {**keep, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", **extra}


@pytest.mark.parametrize(
    "env",
    [
        _strict_locale_env(),
        _strict_locale_env(PYTHONIOENCODING="ascii"),
        _strict_locale_env(LC_ALL="C.UTF-8"),
    ],
    ids=["LC_ALL=C", "PYTHONIOENCODING=ascii", "C.UTF-8 without UTF-8 mode"],
)
def test_invalid_utf8_on_stdin_gets_a_kind_answer(tmp_path: Path, env: dict[str, str]) -> None:
    lines = [
        b"hola \xff\xfe ni\xc3\xb1o",  # two bytes that are never UTF-8, then a real n-tilde
        b"\xc3",  # a sequence cut short
        b"\xed\xa0\x80 \x80\x80",  # an encoded surrogate and lone continuation bytes
        b"hi",
    ]
    result = _run(["console", "--db", str(tmp_path / "c.db")], env, b"\n".join(lines) + b"\n")
    out, err = result.stdout.decode("utf-8", "replace"), result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, err
    assert "Traceback" not in err, err
    # Every line was read and answered: four echoes, each followed by a SafeBot reply.
    turns = out.split("\n> ")[1:]
    assert len(turns) == len(lines), out
    assert all("SafeBot:" in turn for turn in turns), out
    if env["LC_ALL"] == "C.UTF-8":
        # What is valid UTF-8 arrives as typed; only the bad bytes become U+FFFD.
        assert "> hola \ufffd\ufffd niño" in out, out
