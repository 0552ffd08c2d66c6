"""The Discord escaper: escaped text shows the original characters and nothing in it is live."""

from __future__ import annotations

import pytest
from discord_markdown import SAMPLES, live_constructs, shown
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_discord_adapter import World, bot, dm, press, setup_server, store, world

from safebot.adapters.discord import DiscordAdapter
from safebot.adapters.discord.escape import escape, truncate
from safebot.adapters.discord.render import rendered_length, text_of
from safebot.messages import Message, Span, fit

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
def test_truncated_text_stays_inert(raw: str, limit: int) -> None:
    cut = truncate(escape(raw * 3), limit)
    assert len(cut) <= limit
    assert live_constructs(cut.removesuffix("…")) == [], cut


@settings(max_examples=200, derandomize=True, deadline=None, suppress_health_check=[*HealthCheck])
@given(st.lists(MARKDOWNISH, min_size=1, max_size=4), st.integers(min_value=8, max_value=60))
def test_a_message_cut_to_fit_discord_stays_inert_and_loses_nothing(
    typed: list[str], limit: int
) -> None:
    """The core cuts before Discord escapes, so no part ends inside an escape or starts a
    line that renders as markdown, whatever was typed."""
    spans = tuple(s for text in typed for s in (Span("Said: "), Span(text * 3, untrusted=True)))
    parts = fit(Message(spans), limit, rendered_length)
    for part in parts:
        rendered = text_of(part.spans)
        assert len(rendered) <= limit, rendered
        assert live_constructs(rendered) == [], rendered
    said = "".join(s.text for part in parts for s in part.spans if s.untrusted)
    whole = "".join(text * 3 for text in typed)
    assert said.replace(" ", "").replace("\n", "") == whole.replace(" ", "").replace("\n", "")


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


async def test_a_review_longer_than_discord_allows_arrives_in_parts_that_stay_inert(
    world: World, bot: DiscordAdapter
) -> None:
    """Escaping doubles what people type in markdown: 1,400 typed characters of it make a
    review of more than 3,000. The core cuts it to Discord's 2,000 before it is escaped, so
    Discord takes every part, none is live, and the buttons come with the last one."""
    await setup_server(world)
    details = "**bold** <@&1> ||x|| " * 70
    first = await dm(world, world.alice, "hi")
    msg = await press(world, world.alice, first, "report")
    msg = await press(world, world.alice, msg, "report.go")
    msg = await press(world, world.alice, msg, "Test Server")
    msg = await press(world, world.alice, msg, "cat.threats")
    for text in ("someone", details, "https://x.test/a"):
        msg = await dm(world, world.alice, text)
    mark = len(world.fake.requests)
    review = await press(world, world.alice, msg, "identity.share")
    sent = [
        str(r.json["content"])
        for r in world.fake.requests[mark:]
        if r.method in ("POST", "PATCH") and r.json and r.json.get("content") and r.status == 200
    ]
    assert len(sent) >= 2, sent
    assert all(len(text) <= 2000 for text in sent)
    # Only the content's own bold is live: the review's headings.
    assert all(live_constructs(text.replace("**", "")) == [] for text in sent), sent
    assert "".join(shown(text) for text in sent).count("**bold** <@&1> ||x||") >= 60
    assert not any(r.status and r.status >= 400 for r in world.fake.requests[mark:])
    receipt = await press(world, world.alice, review, "report.confirm")
    assert "R-" in receipt.content
