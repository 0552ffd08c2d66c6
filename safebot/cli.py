"""The ``safebot`` command: console, run, check, export, db."""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import sys
import time
from collections.abc import Sequence

from safebot.content import Content, ContentError
from safebot.flows import load_flow
from safebot.ops.health import MonitoringError
from safebot.ops.logformat import configure_logging
from safebot.ops.secrets import SecretError, discord_token, matrix_access_token, matrix_password
from safebot.settings import Settings, SettingsError, load_settings
from safebot.store import StoreUnavailable

__all__ = ["main"]

log = logging.getLogger(__name__)

PLATFORMS = ("discord", "matrix")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="safebot", description="A private, consent-first sextortion help bot."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    console = sub.add_parser("console", help="chat with SafeBot in this terminal (local demo)")
    console.add_argument("--config", help="TOML settings file (optional)")
    console.add_argument("--db", help="database: a SQLite file path, or 'memory'")
    console.add_argument("--lang", help="start in this language, e.g. en or es")
    run = sub.add_parser("run", help="run SafeBot on a chat platform")
    run.add_argument("platform", choices=PLATFORMS)
    run.add_argument("--config", required=True, help="TOML settings file")
    run.add_argument(
        "--shards", help="Discord: the shard ids this process runs, e.g. 0-3 (needs --shard-count)"
    )
    run.add_argument("--shard-count", type=int, help="Discord: the total number of shards")
    check = sub.add_parser("check", help="validate the settings file and the content files")
    check.add_argument("--config", help="TOML settings file")
    export = sub.add_parser(
        "export", help="print a report's evidence pack (for a platform, a hotline or police)"
    )
    export.add_argument("reference", help="the report reference, e.g. R-7K3Q")
    export.add_argument("--json", action="store_true", help="JSON instead of text")
    export.add_argument("--config", help="TOML settings file")
    export.add_argument("--db", help="database: a SQLite file path or postgresql://...")
    db = sub.add_parser("db", help="database tools: backup, migrate")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    backup = db_sub.add_parser("backup", help="copy the SQLite database into a new file")
    backup.add_argument("path", help="the new file (it must not exist)")
    migrate = db_sub.add_parser("migrate", help="bring the database schema up to date")
    for tool in (backup, migrate):
        tool.add_argument("--config", help="TOML settings file")
        tool.add_argument("--db", help="database: a SQLite file path or postgresql://...")
    return parser


def _logging(settings: Settings, quiet: bool) -> None:
    configure_logging("WARNING" if quiet else settings.log_level, settings.log_format)


def _check(config: str | None) -> int:
    problems: list[str] = []
    settings: Settings | None = None
    try:
        settings = load_settings(config)
    except SettingsError as exc:
        problems += [f"settings: {p}" for p in exc.problems]
    try:
        content = Content.load()
        region = settings.default_region if settings is not None else ""
        if region and region not in content.regions:
            known = ", ".join(sorted(content.regions))
            problems.append(f"settings: default_region {region!r} is not one of {known}")
        flow = load_flow()
        missing = sorted(i for i in flow.message_ids() if not content.has(i))
        problems += [f"flows: text {i!r} does not exist" for i in missing]
    except ContentError as exc:
        problems += [f"content: {p}" for p in exc.problems]
    for problem in problems:
        print(problem)
    if not problems:
        print("OK: settings and content are valid.")
    return 1 if problems else 0


def _check_region(settings: Settings) -> None:
    """Refuse, before anything starts, a default_region the content does not define."""
    if settings.default_region and settings.default_region not in Content.load().regions:
        raise SettingsError([f"default_region {settings.default_region!r} is not a known region"])


async def _console(settings: Settings, locale: str | None) -> None:
    from adapters.console import ConsolePlatform, run_console
    from safebot.ops.health import start_monitoring
    from safebot.service import SafeBot, build_engine
    from safebot.store import open_store

    engine = build_engine(settings)
    store = await open_store(settings.database_url)
    try:
        platform = ConsolePlatform(settings, engine.content, sys.stdout)
        bot = SafeBot(engine=engine, store=store, port=platform, settings=settings)
        bot.metrics.set_connected(True)  # the terminal is always there
        health = await start_monitoring(settings.monitoring, bot.metrics, store)
        try:
            await run_console(bot, locale, _console_stdin(), sys.stdout)
        finally:
            if health is not None:
                await health.close()
    finally:
        await store.close()


async def _export(settings: Settings, reference: str, *, as_json: bool) -> int:
    """Print the evidence pack of one report: the operator's way, for any community."""
    from safebot.service import export_evidence
    from safebot.store import open_store

    content = Content.load()
    store = await open_store(settings.database_url)
    try:
        actor = "operator (command line)"
        pack = await export_evidence(store, content, settings, None, reference, actor, time.time())
    finally:
        await store.close()
    if pack is None:
        print(f"safebot export: no report {reference.strip().upper()!r}", file=sys.stderr)
        return 1
    print(pack.as_json() if as_json else pack.as_text(), end="" if not as_json else "\n")
    return 0


def _console_stdin() -> io.TextIOWrapper:
    """Standard input as UTF-8, whatever the locale says, with bytes that are not UTF-8
    replaced (U+FFFD) instead of raising. Standard output keeps its encoding but replaces what
    it cannot show, so a strict locale (``LC_ALL=C`` with ``PYTHONUTF8=0``) never crashes."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")
    return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")


def _unavailable(command: str, exc: StoreUnavailable) -> int:
    print(f"{command}: {exc}", file=sys.stderr)
    return 2


def _db(settings: Settings, command: str, path: str | None) -> int:
    from safebot.ops import database

    try:
        if command == "backup":
            assert path is not None
            database.backup(settings.database_url, path, sys.stdout)
        else:
            asyncio.run(database.migrate(settings.database_url, sys.stdout))
    except (database.DatabaseToolError, OSError) as exc:
        print(f"safebot db {command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _shard_range(text: str | None, count: int | None) -> list[int] | None:
    if text is None:
        return None
    first, _, last = text.partition("-")
    ids = list(range(int(first), int(last or first) + 1))
    if count is None or not ids or ids[-1] >= count:
        raise ValueError("--shards must lie within --shard-count")
    return ids


def _run_discord(settings: Settings, shards: str | None, shard_count: int | None) -> int:
    try:
        token = discord_token(settings)
    except SecretError as exc:
        print(f"safebot run discord: {exc}", file=sys.stderr)
        return 2
    if token is None:
        print(
            f"Set the bot token in the {settings.discord.token_env} environment variable"
            " (or [discord] token_file, or the discord-token systemd credential).",
            file=sys.stderr,
        )
        return 2
    try:
        shard_ids = _shard_range(shards, shard_count)
    except ValueError as exc:
        print(f"safebot run discord: {exc}", file=sys.stderr)
        return 2
    from adapters.discord import run_discord

    try:
        asyncio.run(run_discord(settings, token, shard_ids=shard_ids, shard_count=shard_count))
    except StoreUnavailable as exc:
        return _unavailable("safebot run discord", exc)
    except MonitoringError as exc:
        print(f"safebot run discord: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _run_matrix(settings: Settings) -> int:
    matrix = settings.matrix
    missing = [name for name in ("homeserver", "user_id") if not getattr(matrix, name)]
    if missing:
        print(
            f"safebot run matrix: set [matrix] {', '.join(missing)} in the config file.",
            file=sys.stderr,
        )
        return 2
    try:
        has_secret = bool(matrix_password(settings) or matrix_access_token(settings))
    except SecretError as exc:
        print(f"safebot run matrix: {exc}", file=sys.stderr)
        return 2
    if not has_secret:
        print(
            f"Set {matrix.password_env} (or {matrix.access_token_env} with [matrix] device_id)"
            " in the environment, or [matrix] password_file, or the matrix-password systemd"
            " credential.",
            file=sys.stderr,
        )
        return 2
    from adapters.matrix import MatrixLoginError, run_matrix

    try:
        asyncio.run(run_matrix(settings))
    except MonitoringError as exc:
        print(f"safebot run matrix: {exc}", file=sys.stderr)
        return 2
    except MatrixLoginError as exc:
        print(f"safebot run matrix: {exc}", file=sys.stderr)
        return 1
    except StoreUnavailable as exc:
        return _unavailable("safebot run matrix", exc)
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return _check(args.config)
    try:
        settings = load_settings(args.config, database_url=getattr(args, "db", None))
        _check_region(settings)
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"settings: {problem}", file=sys.stderr)
        return 2
    if args.command == "db":
        return _db(settings, args.db_command, getattr(args, "path", None))
    if args.command == "export":
        try:
            return asyncio.run(_export(settings, args.reference, as_json=args.json))
        except StoreUnavailable as exc:
            return _unavailable("safebot export", exc)
    if args.command == "run":
        _logging(settings, quiet=False)
        if args.platform == "matrix":
            return _run_matrix(settings)
        return _run_discord(settings, args.shards, args.shard_count)
    _logging(settings, quiet=args.config is None)  # the demo without a config: warnings only
    try:
        asyncio.run(_console(settings, args.lang))
    except StoreUnavailable as exc:
        return _unavailable("safebot console", exc)
    except MonitoringError as exc:
        print(f"safebot console: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
