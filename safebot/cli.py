"""The ``safebot`` command: console, run, check. This is the composition root."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from safebot.content import Content, ContentError
from safebot.flows import load_flow
from safebot.settings import Settings, SettingsError, load_settings

__all__ = ["main"]

log = logging.getLogger(__name__)

ADAPTERS_LATER = {
    "discord": "the Discord adapter is not part of this version yet",
    "matrix": "the Matrix adapter is not part of this version yet",
}


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
    run.add_argument("platform", choices=sorted(ADAPTERS_LATER))
    run.add_argument("--config", required=True, help="TOML settings file")
    check = sub.add_parser("check", help="validate the settings file and the content files")
    check.add_argument("--config", help="TOML settings file")
    return parser


def _logging(settings: Settings, quiet: bool) -> None:
    level = logging.WARNING if quiet else getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _check(config: str | None) -> int:
    problems: list[str] = []
    try:
        load_settings(config)
    except SettingsError as exc:
        problems += [f"settings: {p}" for p in exc.problems]
    try:
        content = Content.load()
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


async def _console(settings: Settings, locale: str | None) -> None:
    from adapters.console import ConsolePlatform, run_console
    from safebot.service import SafeBot, build_engine
    from safebot.store import open_store

    engine = build_engine(settings)
    store = await open_store(settings.database)
    try:
        platform = ConsolePlatform(settings, engine.content, sys.stdout)
        bot = SafeBot(engine=engine, store=store, port=platform, settings=settings)
        await run_console(bot, engine.content, locale, sys.stdin, sys.stdout)
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return _check(args.config)
    try:
        settings = load_settings(args.config, database=getattr(args, "db", None))
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"settings: {problem}", file=sys.stderr)
        return 2
    if args.command == "run":
        print(f"safebot run {args.platform}: {ADAPTERS_LATER[args.platform]}.", file=sys.stderr)
        print("Try `safebot console` for the local demo.", file=sys.stderr)
        return 2
    _logging(settings, quiet=True)
    try:
        asyncio.run(_console(settings, args.lang))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
