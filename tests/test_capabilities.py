"""What a platform can carry (``Capabilities``): the core cuts messages to the platform's
longest one, and refuses to start with a step or choice id a button could not bring back."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_service import report, review_screen

from safebot.adapters.discord.items import CHOICE_ID, STEP_ID
from safebot.adapters.memory import MemoryBot, MemoryPlatform
from safebot.app import assemble
from safebot.content import Content
from safebot.conversation import Engine, Policy
from safebot.flows import Flow
from safebot.messages import Choice, Message, Span, fit, plain_length
from safebot.platforms import PlatformError
from safebot.ports import Capabilities
from safebot.recognise import Recogniser
from safebot.settings import Settings
from safebot.store.memory import MemoryStore

CHOICES = (Choice("yes", "Yes"), Choice("no", "No"))


def _squeezed(text: str) -> str:
    return "".join(text.split())


# --- fit ------------------------------------------------------------------------------------
def test_a_message_that_fits_is_left_alone() -> None:
    message = Message((Span("Hello "), Span("Sam", untrusted=True)), CHOICES, "menu")
    assert fit(message, 100) == (message,)
    assert fit(message, None) == (message,)


def test_a_long_message_is_cut_at_paragraphs_and_keeps_its_choices_last() -> None:
    first, second = "A" * 30, "B" * 30
    message = Message((Span(f"{first}\n\n{second}"),), CHOICES, "menu", urgent=True, asks="details")
    parts = fit(message, 40)
    assert [p.text for p in parts] == [first, second]
    assert parts[0].choices == () and parts[0].node is None and parts[0].asks is None
    assert (parts[-1].choices, parts[-1].node, parts[-1].asks) == (CHOICES, "menu", "details")
    assert all(p.urgent for p in parts)


def test_untrusted_text_stays_untrusted_in_every_part() -> None:
    typed = "word " * 40
    parts = fit(Message((Span("You wrote: "), Span(typed, untrusted=True))), 50)
    assert len(parts) > 1
    for part in parts:
        assert plain_length(part.spans) <= 50
        assert all(s.untrusted for s in part.spans if "word" in s.text)
        assert not any(s.text.endswith(" wo") for s in part.spans)  # cut between words


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[*HealthCheck])
@given(
    st.lists(st.tuples(st.text(max_size=120), st.booleans()), min_size=1, max_size=5),
    st.integers(min_value=1, max_value=60),
)
def test_every_part_fits_and_nothing_but_the_whitespace_at_a_cut_is_lost(
    spans: list[tuple[str, bool]], limit: int
) -> None:
    message = Message(tuple(Span(text, untrusted) for text, untrusted in spans), CHOICES)
    parts = fit(message, limit)
    for part in parts:
        assert plain_length(part.spans) <= limit
        assert part.spans
    assert _squeezed("".join(p.text for p in parts)) == _squeezed(message.text)
    assert parts[-1].choices == CHOICES


# --- the service cuts what it sends ----------------------------------------------------------
async def test_replies_are_cut_to_the_platforms_longest_message(bot: MemoryBot) -> None:
    bot.platform.capabilities = Capabilities(max_length=160)
    home = await bot.setup_community("g1", "Home")
    ana = bot.person("ana")
    bot.platform.join(ana, home)
    details = "They say they will post my photos unless I pay them tonight. " * 6
    review = await review_screen(bot, ana, home, "someone#1234", details)
    assert len(review) > 1
    assert all(plain_length(m.spans) <= 160 for m in review)
    assert _squeezed(details) in _squeezed("".join(m.text for m in review))
    assert "report.confirm" in [c.id for c in review[-1].choices]
    assert all(not m.choices for m in review[:-1])


async def test_a_long_note_reaches_the_moderators_in_parts_each_sent_once(bot: MemoryBot) -> None:
    home = await bot.setup_community("g1", "Home")
    alice = bot.person("alice")
    bot.platform.join(alice, home)
    reference = await report(bot, alice, home)
    await bot.deliver()
    bot.platform.capabilities = Capabilities(max_length=120)
    await bot.command(alice, "my-reports")
    await bot.press(alice, f"report.{reference}", "mine")
    note = "He made a new account and messaged my friends too. " * 5
    await bot.say(alice, note)
    await bot.deliver()
    parts = bot.platform.replies("mods")
    assert len(parts) > 1
    keys = [p.key for p in parts]
    assert keys[1:] == [f"{keys[0]}#{i}" for i in range(1, len(parts))]
    assert all(p.message is not None and plain_length(p.message.spans) <= 120 for p in parts)
    said = "".join(s.text for p in parts if p.message for s in p.message.spans if s.untrusted)
    assert _squeezed(said).endswith(_squeezed(note))
    await bot.deliver()
    assert len(bot.platform.replies("mods")) == len(parts)  # delivered once


# --- ids a tapped choice must bring back ------------------------------------------------------
def _assemble(engine: Engine, capabilities: Capabilities) -> None:
    platform = MemoryPlatform(capabilities=capabilities)
    assemble(engine, MemoryStore(), platform, Settings())  # type: ignore[arg-type]


def test_discord_can_carry_every_id_the_shipped_flow_and_content_use(engine: Engine) -> None:
    _assemble(engine, Capabilities(step_ids=STEP_ID, choice_ids=CHOICE_ID))


def test_an_id_discord_could_not_carry_stops_the_start(
    flow: Flow, content: Content, recogniser: Recogniser
) -> None:
    long_id = "report." + "x" * 40
    nodes = dict(flow.nodes)
    nodes[long_id] = nodes[flow.start]
    choices = {**flow.choices, "Tell Someone": flow.choices[next(iter(flow.choices))]}
    broken = Flow(flow.start, nodes, choices, flow.intents, flow.commands)
    engine = Engine(broken, content, recogniser, Policy())
    with pytest.raises(PlatformError) as refused:
        _assemble(engine, Capabilities(step_ids=STEP_ID, choice_ids=CHOICE_ID))
    assert long_id in str(refused.value) and "Tell Someone" in str(refused.value)
    _assemble(engine, Capabilities())  # a platform with no buttons carries anything
