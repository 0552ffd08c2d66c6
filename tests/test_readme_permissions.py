"""The README's invite permission numbers are the permissions its table lists."""

from __future__ import annotations

from pathlib import Path

import discord

README = Path(__file__).resolve().parent.parent / "README.md"

#: The README's table: View Channels, Send Messages, Embed Links, Read Message History,
#: Mention @everyone, @here and All Roles, then Moderate Members and Ban Members (optional).
NEEDED = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    read_message_history=True,
    mention_everyone=True,
)
MODERATION = discord.Permissions(moderate_members=True, ban_members=True)


def test_readme_invite_permissions_match_the_table() -> None:
    text = README.read_text(encoding="utf-8")
    full = NEEDED.value | MODERATION.value
    assert f"permissions={full}" in text
    assert f"`permissions={NEEDED.value}`" in text
    assert "84992" not in text  # the old number also dropped Mention @everyone
    for name in ("View Channels", "Send Messages", "Embed Links", "Read Message History"):
        assert name in text
    assert "Mention @everyone, @here and All Roles" in text
    assert "Moderate Members, Ban Members" in text
