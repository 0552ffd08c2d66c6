"""The console adapter, driven the way a newcomer or a script would: the real `safebot`
command with piped stdin, one message per line, replies on stdout."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def console(tmp_path: Path, lines: list[str], *args: str, db: str | None = None) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "safebot.cli",
            "console",
            "--db",
            db or str(tmp_path / "c.db"),
            *args,
        ],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def test_english_conversation_to_alert_and_acknowledgement(tmp_path: Path) -> None:
    out = console(
        tmp_path,
        [
            "hi",
            "Tell the moderators",
            "Start a report",
            "Demo Server",
            "Asking me for money",
            "@everyone scammer_99",
            "He wants $500 or he'll send my pics to my followers",
            "https://discord.com/channels/1/2/3",
            "Keep me anonymous",
            "Send the report",
            ":mod ack",
        ],
    )
    reference = re.search(r"reference is (R-[0-9A-Z]{4})", out)
    assert reference, out
    ref = reference.group(1)
    # The alert is printed in the moderator box, once.
    box = re.findall(r"== #safety-team[^\n]*\n(?:\| [^\n]*\n)+", out)
    alert = [b for b in box if f"Safety report {ref}" in b]
    assert len(alert) == 1, out
    assert "anonymous" in alert[0] and "@everyone scammer_99" in alert[0]
    assert "do not download" in alert[0]
    # The moderator acknowledged; the reporter got the status update.
    assert f"You acknowledged {ref}" in out
    assert f"Update on your report {ref}: a moderator has seen it" in out


def test_spanish_conversation_with_numbers(tmp_path: Path) -> None:
    out = console(
        tmp_path,
        [
            "hola",
            "6",  # avisar a los moderadores
            "1",  # empezar
            "1",  # Demo Server
            "2",  # dinero
            "fulano_123",
            "dice que va a publicar mis fotos si no le pago",
            "1",  # saltar enlaces
            "1",  # pueden ver que soy yo
            "1",  # enviar
            ":mod claim",
            ":mod resolve",
        ],
        "--lang",
        "es",
    )
    found = re.search(r"referencia es (R-[2-9A-Z]{4})", out)
    assert found, out
    ref = found.group(1)
    assert out.count(f"Reporte de seguridad {ref}") == 1
    assert "Exigencia de dinero" in out and "fulano_123" in out
    assert f"Te hiciste cargo de {ref}" in out
    assert f"Novedades sobre tu reporte {ref}: un moderador lo está revisando" in out
    assert f"Novedades sobre tu reporte {ref}: los moderadores lo marcaron" in out, out


def test_state_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "keep.db")
    first = console(tmp_path, ["how do I block them", "Discord"], db=db)
    assert "computer or a phone" in first
    second = console(tmp_path, ["Phone or tablet"], db=db)
    assert "Step 1 of" in second


def test_crisis_first_in_console(tmp_path: Path) -> None:
    out = console(tmp_path, ["i want to kill myself"])
    first_reply = out.split("SafeBot:")[1]
    assert "emergency" in first_reply


def test_database_file_is_private(tmp_path: Path) -> None:
    db = tmp_path / "private.db"
    console(tmp_path, ["hi"], db=str(db))
    assert (db.stat().st_mode & 0o777) == 0o600
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from sessions").fetchone()[0] == 1


def test_check_command(tmp_path: Path) -> None:
    good = subprocess.run(
        [sys.executable, "-m", "safebot.cli", "check"], capture_output=True, text=True, cwd=REPO
    )
    assert good.returncode == 0 and "OK" in good.stdout
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text('retention_days = 0\nmystery = 1\n[discord]\ntoken = "abc"\n')
    bad = subprocess.run(
        [sys.executable, "-m", "safebot.cli", "check", "--config", str(bad_config)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert bad.returncode == 1
    assert "mystery" in bad.stdout and "retention_days" in bad.stdout
    assert "environment" in bad.stdout and "abc" not in bad.stdout


def test_run_matrix_explains_missing_settings(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "safebot.cli", "run", "matrix", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2 and "homeserver" in result.stderr and "user_id" in result.stderr


def test_run_discord_needs_a_token(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if k != "SAFEBOT_DISCORD_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "safebot.cli", "run", "discord", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert result.returncode == 2 and "SAFEBOT_DISCORD_TOKEN" in result.stderr


def test_moderator_blocks_and_unblocks_the_reporter(tmp_path: Path) -> None:
    report = [
        "hi",
        "Tell the moderators",
        "Start a report",
        "Demo Server",
        "Asking me for money",
        "someone",
        "he keeps asking",
        "skip",
        "Keep me anonymous",
        "Send the report",
    ]
    again = ["menu", "Tell the moderators", "Start a report"]
    out = console(tmp_path, [*report, ":mod block", *again, ":mod unblock", *again])
    found = re.search(r"reference is (R-[0-9A-Z]{4})", out)
    assert found, out
    ref = found.group(1)
    blocked, unblocked = out.split(f"The person who sent {ref} can report to this community again")
    assert f"The person who sent {ref} can no longer report to this community" in blocked
    # While blocked, the community is not offered; once unblocked it is again.
    assert "couldn't find a server or room" in blocked.split("can no longer report")[1]
    assert "1) Demo Server" in unblocked
    assert "couldn't find a server or room" not in unblocked


def test_mod_block_help_and_unknown_reference(tmp_path: Path) -> None:
    out = console(tmp_path, [":help", ":mod block R-ZZZZ"])
    assert ":mod block R-XXXX" in out and ":mod unblock R-XXXX" in out
    assert "I don't know a report R-ZZZZ in this community" in out


def test_moderator_case_note_and_evidence_pack(tmp_path: Path) -> None:
    out = console(
        tmp_path,
        [
            *("hi", "Tell the moderators", "Start a report", "1", "2", "bad_guy_7", "skip"),
            *("skip", "2", "1", ":mod note called the parent", ":mod export", ":mod export R-NONE"),
        ],
    )
    ref = re.search(r"reference is (R-[0-9A-Z]{4})", out)
    assert ref, out
    assert f"Noted on {ref.group(1)}" in out
    assert f"SafeBot evidence pack: report {ref.group(1)}" in out
    assert "mod: called the parent" in out and "bad_guy_7" in out and "No images" in out
    assert "I don't know a report R-NONE" in out
