"""The ``safebot`` command: console, run, check, export, db.

The chat platforms (``safebot run NAME`` and the local ``safebot console``) come from the
registry (safebot/platforms.py); this module names none of them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence

from safebot.content import Content, ContentError
from safebot.flows import load_flow
from safebot.ops.health import MonitoringError
from safebot.ops.logformat import configure_logging
from safebot.platforms import Platform, PlatformError, platforms
from safebot.settings import Settings, SettingsError, load_settings
from safebot.store import StoreUnavailable

__all__ = ["main"]

log = logging.getLogger(__name__)


def _parser(installed: Mapping[str, Platform]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="safebot", description="A private, consent-first sextortion help bot."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for platform in installed.values():
        if platform.local:  # the local demo: ``safebot console``
            local = sub.add_parser(platform.name, help=platform.summary)
            local.add_argument("--config", help="TOML settings file (optional)")
            local.add_argument("--db", help="database: a SQLite file path, or 'memory'")
            local.set_defaults(platform=platform.name)
            platform.add_arguments(local)
    run = sub.add_parser("run", help="run SafeBot on a chat platform")
    on = run.add_subparsers(dest="platform", required=True, metavar="PLATFORM")
    for platform in installed.values():
        if not platform.local:
            one = on.add_parser(platform.name, help=platform.summary)
            one.add_argument("--config", required=True, help="TOML settings file")
            platform.add_arguments(one)
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


def _serve(settings: Settings, platform: Platform, args: argparse.Namespace) -> int:
    """Run ``platform`` through the composition root; errors become one line and a status."""
    from safebot.app import serve

    command = f"safebot {'' if platform.local else 'run '}{platform.name}"
    try:
        make_adapter = platform.prepare(settings, args)
        asyncio.run(serve(settings, make_adapter, signals=not platform.local))
    except PlatformError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except StoreUnavailable as exc:
        return _unavailable(command, exc)
    except MonitoringError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    installed = platforms()
    args = _parser(installed).parse_args(argv)
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
    platform = installed[args.platform]
    # The demo without a config shows warnings only; a real run logs at the configured level.
    _logging(settings, quiet=platform.local and args.config is None)
    return _serve(settings, platform, args)


if __name__ == "__main__":
    raise SystemExit(main())
