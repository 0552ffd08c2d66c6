"""The crisis screen with no region known, against a real Synapse with an encrypted DM."""

from __future__ import annotations

from test_matrix_adapter import (  # fixtures are used by name
    Bot,
    bot,
    community_with_mods,
    matrix,
    matrix_user,
    person,
    running_synapse,
    say,
    store,
    synapse,
    walk_to_review,
)

from safebot.model import CommunityId

try:
    from tests.synapse import MatrixHarness
except ModuleNotFoundError:  # plain ``pytest``: only tests/ is on sys.path
    from synapse import MatrixHarness  # type: ignore[no-redef, unused-ignore]

__all__ = ["bot", "matrix", "matrix_user", "running_synapse", "store", "synapse"]


async def test_no_region_crisis_shows_labelled_lines_and_country(
    matrix: MatrixHarness, bot: Bot
) -> None:
    alice, dm = await person(matrix, bot, "alice")
    reply = await say(alice, dm, bot, "i want to kill myself", "findahelpline.com")
    lines = reply.body.splitlines()
    for label, contact in (
        ("United States", "988"),
        ("United States", "741741"),
        ("United Kingdom", "85258"),
        ("Canada", "686868"),
        ("Australia", "1800 55 1800"),
        ("Spain", "024"),
        ("Mexico", "800 911 2000"),
        ("Any country", "findahelpline.com"),
    ):
        assert any(label in line and contact in line for line in lines), (label, contact)
    # The choice the text names is offered on the same message, as a numbered line.
    assert "1. Country" in lines, lines[-3:]
    assert "<li>Country</li>" in reply.source["content"]["formatted_body"]
    await say(alice, dm, bot, "1", "Which country")


async def test_room_region_from_link_is_used_for_its_reporters(
    matrix: MatrixHarness, bot: Bot
) -> None:
    alice, dm = await person(matrix, bot, "alice")
    owner, community, mods = await community_with_mods(matrix, bot, [alice])
    await say(owner, mods, bot, f"!safebot link {community} XX", "country code")
    await say(owner, mods, bot, f"!safebot link {community} uk", "Linked")
    config = await bot.store.get_community(CommunityId("matrix", community))
    assert config is not None and config.region == "UK"
    await walk_to_review(alice, dm, bot, "@mallory:localhost", "money", "https://a.test/1")
    receipt = await say(alice, dm, bot, "1", "reference")
    # The receipt's outside help is the United Kingdom's: CEOP, not the CyberTipline.
    assert "CEOP" in receipt.body and "999" in receipt.body
    assert "CyberTipline" not in receipt.body
