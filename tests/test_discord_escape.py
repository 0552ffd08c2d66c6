"""The Discord escaper: escaped text shows the original characters and nothing in it is live."""

from __future__ import annotations

import pytest
from discord_markdown import SAMPLES, live_constructs, shown
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_discord_adapter import World, bot, dm, press, setup_server, store, world

from adapters.discord import DiscordAdapter
from adapters.discord.escape import escape, truncate
from adapters.discord.render import split_text

__all__ = ["bot", "store", "world"]  # fixtures shared with test_discord_adapter

MARKDOWNISH = st.lists(
    st.sampled_from([*"\\*_~`|[]()<>:@#-+.!/ \n\t1aZ\u200b", "https://", "everyone", "t:1"]),
    max_size=40,
).map("".join)


@pytest.mark.parametrize("construct", sorted(SAMPLES))
def test_every_construct_is_inert_and_shows_as_typed(construct: str) -> None:
    raw = SAMPLES[construct]
    assert live_constructs(raw), f"the model does not see {construct!r} as live"
    escaped = escape(raw)
    assert live_constructs(escaped) == [], escaped
    assert shown(escaped) == raw.replace("\u200b", "")


def test_discord_py_escaper_leaves_the_second_masked_link_live() -> None:
    """Why we escape ourselves: the model sees what the tester saw with discord.py's escaper."""
    import discord

    raw = "[one](https://a.test) [two](https://b.test)"
    assert "masked link" in live_constructs(discord.utils.escape_markdown(raw, ignore_links=False))
    assert live_constructs(escape(raw)) == []


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[*HealthCheck])
@given(st.one_of(MARKDOWNISH, st.text(max_size=80)))
def test_escaped_text_is_inert_and_shows_the_same_characters(raw: str) -> None:
    escaped = escape(raw)
    assert live_constructs(escaped) == [], (raw, escaped)
    assert shown(escaped) == raw.replace("\u200b", "")


@settings(max_examples=200, derandomize=True, deadline=None, suppress_health_check=[*HealthCheck])
@given(MARKDOWNISH, st.integers(min_value=2, max_value=40))
def test_truncated_and_split_text_stays_inert(raw: str, limit: int) -> None:
    escaped = escape(raw * 3)
    cut = truncate(escaped, limit)
    assert len(cut) <= limit
    assert live_constructs(cut.removesuffix("…")) == [], cut
    for chunk in split_text(escaped.replace("\n", " "), limit):
        assert len(chunk) <= limit
        assert not (len(chunk) - len(chunk.rstrip("\\"))) % 2, chunk  # no escape cut in half
        assert live_constructs(chunk) == [], chunk


# --- over the wire: the exact payloads the fake Discord received ------------------------------
def _between(text: str, start: str, end: str) -> str:
    assert start in text and end in text, (start, end, text[:300])
    return text.split(start, 1)[1].split(end, 1)[0]


def _wrapped(samples: list[str], tag: str) -> str:
    """Each sample on its own lines between alphanumeric markers (which are never escaped)."""
    return "\n".join(f"{tag}{i}A\n{s}\n{tag}{i}B" for i, s in enumerate(samples))


def _check_slices(text: str, samples: list[str], tag: str, where: str) -> None:
    for i, sample in enumerate(samples):
        part = _between(text, f"{tag}{i}A", f"{tag}{i}B")
        assert live_constructs(part) == [], (where, sample, part)
        assert shown(part).strip() == sample, (where, sample, part)


async def test_markdown_in_a_report_is_inert_in_review_and_alert(
    world: World, bot: DiscordAdapter
) -> None:
    await setup_server(world)
    samples = [SAMPLES[name] for name in sorted(SAMPLES)]
    details = _wrapped(samples, "ZD")
    offender_samples = ["[a](https://x.test) [b](https://y.test)", "<@&1> @here ||s||"]
    offender = _wrapped(offender_samples, "ZO").replace("\n", " ")
    evidence = "https://x.test/[a](https://y.test/b)||c||~~d~~`e`"
    first = await dm(world, world.alice, "hi")
    msg = await press(world, world.alice, first, "report")
    msg = await press(world, world.alice, msg, "report.go")
    msg = await press(world, world.alice, msg, "Test Server")
    msg = await press(world, world.alice, msg, "cat.threats")
    for text in (offender, details, evidence):
        msg = await dm(world, world.alice, text)
    review = await press(world, world.alice, msg, "identity.share")
    assert "Who will see it" in review.content
    sent = [r for r in world.fake.requests if r.method == "POST" and r.json]
    [review_body] = [
        r.json for r in sent if "ZD0A" in str(r.json) and "Who will see" in str(r.json)
    ]
    review_text = str(review_body["content"])
    _check_slices(review_text, samples, "ZD", "review")
    _check_slices(review_text, offender_samples, "ZO", "review offender")
    receipt = await press(world, world.alice, review, "report.confirm")
    assert "R-" in receipt.content
    alert = await world.fake.wait_for_message(channel_id=world.safety)
    path = f"/channels/{world.safety.id}/messages"
    [posted] = [r.json for r in world.fake.requests if r.method == "POST" and r.path == path]
    [embed] = posted["embeds"]
    _check_slices(embed["description"], samples, "ZD", "alert details")
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    offender_field = next(v for v in fields.values() if "ZO0A" in v)
    _check_slices(offender_field, offender_samples, "ZO", "alert offender")
    evidence_field = next(v for v in fields.values() if "x.test/" in v and "ZO0A" not in v)
    assert live_constructs(evidence_field) == [] and shown(evidence_field) == evidence
    assert alert.embeds[0]["description"] == embed["description"]
