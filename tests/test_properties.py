"""Property tests (Hypothesis): hostile text and random event sequences against the core.

Text mixes empty and whitespace strings, every Unicode category (lone surrogates too),
control characters, zero-width and bidi marks, emoji, markdown, HTML, Discord mentions,
Matrix pills, SQL-looking text, message links (valid and not), unknown ids, and a few
100,000-character strings. Runs are derandomized, so CI sees the same examples every time;
together the tests below draw well over 10,000 inputs.

Bugs these properties found are pinned at the end of the file as small deterministic tests.
"""

from __future__ import annotations

import asyncio
import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safebot.adapters.memory import MemoryBot
from safebot.content import Content
from safebot.conversation import (
    AddNote,
    Engine,
    ForgetPerson,
    ListCommunities,
    ListReports,
    Outcome,
    Policy,
    Reply,
    SubmitReport,
)
from safebot.events import (
    ChoiceSelected,
    CommandInvoked,
    CommunitiesListed,
    Event,
    NoteAdded,
    ReportsListed,
    ReportSubmitted,
    ReportSummary,
    TextReceived,
)
from safebot.flows import load_flow
from safebot.messages import Message, clean_text
from safebot.model import Community, CommunityId, Draft, PersonId, Session
from safebot.recognise import INTENTS, Recogniser
from safebot.settings import OutboxSettings, Settings
from safebot.store.base import Store
from safebot.store.memory import MemoryStore
from safebot.store.sqlite import SqliteStore

T = TypeVar("T")
Draw = Callable[[st.SearchStrategy[Any]], Any]

CONTENT = Content.load()
FLOW = load_flow()
RECOGNISER = Recogniser.from_dir(CONTENT.root, CONTENT.locales)
ENGINE = Engine(FLOW, CONTENT, RECOGNISER, Policy())
NOW = 1_800_000_000.0
IDLE = Policy().idle_timeout
ME = PersonId("test", "p1")
REVIEW = next(n.id for n in FLOW.nodes.values() if n.review)
CRISIS = ("i want to die", "I want to kill myself", "quiero morirme", "i'm going to end it all")

PROPERTY = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)


def examples(count: int) -> settings:
    return settings(PROPERTY, max_examples=count)


# --- hostile text -------------------------------------------------------------------------------
SNIPPETS = (
    "**",
    "__",
    "`",
    "```",
    "```py\nprint(1)\n```",
    "~~x~~",
    "||spoiler||",
    "> quote",
    "# heading",
    "[link](https://evil.example)",
    "<b>",
    "</b>",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "&amp;&lt;",
    "@everyone",
    "@here",
    "<@123>",
    "<@!123>",
    "<@&456>",
    "<#789>",
    "<:emoji:1>",
    "<t:0:R>",
    "https://matrix.to/#/@user:server",
    '<a href="https://matrix.to/#/@x:y">x</a>',
    "@room",
    "'; DROP TABLE reports; --",
    "' OR 1=1 --",
    "https://discord.com/channels/1/2/3",
    "https://discord.com/channels/@me/x/y",
    "https://discord.com/channels/",
    "http://",
    "https://.",
    "https://" + "a" * 600 + ".com",
    "discord.gg/xyz",
    "javascript:alert(1)",
    "R-ZZZZ",
    "{reference}",
    "{community}",
    "%s%n",
    "\\",
    "\u200b",
    "\u200e",
    "\u200f",
    "\u202e",
    "\u2066",
    "\u2069",
    "\ufeff",
    "\ud800",
    "\udfff",
    "\x00",
    "\x1b[2J",
    "\r\n",
    "😀",
    "👍🏽",
    "🏳️‍🌈",
    "👨‍👩‍👧",
    "🇺🇸",
    "ﬁ",
    "İ",
    "ß",
    "1",
    "2",
    "#3",
    "4)",
    "99",
    "0",
    "-1",
    "skip",
    "menu",
    "stop",
    "help",
    "report",
    "forget me",
    "tell the mods",
    "he wants $500 or he'll post my pics",
    "¿qué hago?",
    "block him",
    "español",
    *CRISIS,
)
ANY_CHAR = st.characters(codec=None, exclude_categories=())  # every category, surrogates too
ODD_CHAR = st.one_of(
    ANY_CHAR,
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # lone surrogates
    st.characters(min_codepoint=0, max_codepoint=0x1F),
    st.characters(min_codepoint=0x7F, max_codepoint=0x9F),
    st.sampled_from(
        "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff\u00a0\u3000"
    ),
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
)
WORDS = st.lists(
    st.one_of(st.sampled_from(SNIPPETS), st.text(ODD_CHAR, max_size=6)), max_size=12
).flatmap(lambda parts: st.sampled_from(["", " ", "\n"]).map(lambda sep: sep.join(parts)))
TEXT = st.one_of(
    st.just(""),
    st.text(st.sampled_from(" \t\n\r\x0b\x0c\u00a0\u2028\u3000"), max_size=8),
    st.text(ANY_CHAR, max_size=40),
    st.text(ODD_CHAR, max_size=40),
    WORDS,
    WORDS,
    st.sampled_from(SNIPPETS),
)
# A few very long strings (cheap to build, expensive to read).
HUGE = st.sampled_from(["a", "i want to die ", "**@everyone** ", "\u202e", "😀", "\ud800 x"]).map(
    lambda piece: (piece * (100_000 // len(piece) + 1))[:100_000]
)
LOCALE_HINT = st.one_of(
    st.none(), st.sampled_from(["en", "es", "es-MX", "en_GB", "pt-BR", "xx", "", "-"]), TEXT
)
IDS = st.one_of(
    st.sampled_from(["1", "123456789012345678", "@x:y", "!room:server", "0", ""]),
    st.text(ANY_CHAR, max_size=20),
)


# --- 1. the recogniser --------------------------------------------------------------------------
@examples(500)
@given(
    texts=st.lists(TEXT, min_size=10, max_size=10),
    prefer=st.one_of(st.none(), st.sampled_from([*CONTENT.locales, "xx", ""])),
)
def test_recogniser_never_raises_and_names_a_known_intent(
    texts: list[str], prefer: str | None
) -> None:
    for text in texts:
        found = RECOGNISER.recognise(text, prefer=prefer)
        assert found.intent is None or found.intent in INTENTS
        assert found.locale is None or found.locale in CONTENT.locales
        assert found.crisis == (found.intent == "crisis")


@examples(6)
@given(text=HUGE)
def test_recogniser_reads_huge_text(text: str) -> None:
    found = RECOGNISER.recognise(text)
    assert found.intent is None or found.intent in INTENTS


@pytest.mark.parametrize("phrase", CRISIS)
def test_crisis_phrases_used_below_are_recognised(phrase: str) -> None:
    assert RECOGNISER.recognise(phrase).crisis


# --- 2. one step from every node ----------------------------------------------------------------
def _steps(platform: str, device: str, what: str) -> int:
    key = f"{what}.{platform}.{device}"
    return len(CONTENT.steps("en", key)) if CONTENT.has(key) else 0


@functools.cache
def _index(size: int) -> st.SearchStrategy[int]:
    return st.integers(0, size - 1)


def pick(draw: Draw, items: Sequence[T]) -> T:
    """``draw(st.sampled_from(items))`` without building a strategy per draw (that is slow)."""
    return items[draw(_index(len(items)))]


BOOL = st.booleans()
REFERENCE = st.lists(st.sampled_from("23456789ABCDEFGHJKMNPQRSTVWXYZ"), min_size=4, max_size=4)
APPS = (*sorted(CONTENT.apps), "myspace")  # an app gone since the session was stored
LINKS = SNIPPETS[SNIPPETS.index("https://discord.com/channels/1/2/3") :][:6]
COMMUNITY = st.builds(lambda i, n: Community(CommunityId("test", i), n), IDS, TEXT)
COMMUNITIES = st.lists(COMMUNITY, max_size=4)
OPTIONAL_TEXT = st.one_of(st.none(), TEXT)
MADE_UP_CHOICE = st.one_of(
    st.sampled_from(sorted(FLOW.choices)),
    st.sampled_from(["community.0", "community.7", "community.-1", "community.x", "community."]),
    st.sampled_from(["region.US", "region.XX", "locale.es", "locale.zz", "locale.", "."]),
    TEXT,
)
ANY_NODE = st.one_of(st.none(), st.sampled_from(sorted(FLOW.nodes)), TEXT)
COMMAND = st.one_of(st.sampled_from(sorted(FLOW.commands)), TEXT)
EVIDENCE = st.one_of(st.none(), st.sampled_from(LINKS), TEXT)
NODES = tuple(sorted(FLOW.nodes))
# Buttons with side effects are the interesting stale ones: confirm, forget, steps, skip.
STALE_FROM = (REVIEW, "forget.confirm", "block.steps", "report.who", *NODES)
CATEGORIES = ("threats", "money", "more_images", "other")
STATIC_CHOICES = {n: FLOW.nodes[n].choices or ("menu",) for n in NODES}
KINDS = ("text", "text", "choice", "choice", "choice", "command")


def session_at(draw: Draw, node: str) -> Session:
    """A session the engine could have stored at ``node``."""
    spec = FLOW.nodes[node]
    variables: dict[str, str] = {}
    if spec.steps or draw(BOOL):
        # A session stored before a content update may name an app that is gone now, or
        # be further into a walkthrough than it has steps today.
        app = pick(draw, APPS)
        known = CONTENT.apps.get(app)
        device = pick(draw, known.devices if known else ("desktop", "mobile"))
        variables.update(app=app, device=device)
        if spec.steps:
            total = _steps(app, device, spec.steps)
            variables["step"] = str(draw(_index(total + 2)))
    offered = tuple(replace(c, name=clean_text(c.name)) for c in draw(COMMUNITIES))
    # The draft survives plain navigation (a stale "menu" button does not clear it), so any
    # node may hold one: empty, or filled up to the community, the category, or complete.
    level = 3 if spec.review and draw(_index(10)) > 0 else pick(draw, (0, 3, 1, 2))
    draft = Draft()
    if level:
        community = pick(draw, offered) if offered else draw(COMMUNITY)
        offender, details = draw(OPTIONAL_TEXT), draw(OPTIONAL_TEXT)
        draft = Draft(
            community=community.id,
            community_name=clean_text(community.name),
            category=pick(draw, CATEGORIES) if level >= 2 else None,
            offender=None if offender is None else clean_text(offender)[:200],
            details=None if details is None else clean_text(details)[:1500],
            evidence=LINKS[: draw(_index(4))],
            reveal=draw(BOOL) if level >= 3 else None,
        )
    if spec.review or (level and draw(BOOL)):
        variables["reference"] = "R-" + "".join(draw(REFERENCE))
    return Session(
        person=ME,
        node=node,
        locale=pick(draw, CONTENT.locales),
        region=pick(draw, sorted(CONTENT.regions)),
        updated_at=NOW,
        locale_chosen=draw(BOOL),
        vars=variables,
        draft=draft,
        offered=offered,
    )


def choice_ids(session: Session) -> list[str]:
    return [c.id for c in ENGINE.render_current(session).choices]


def event_for(draw: Draw, session: Session | None, person: PersonId = ME) -> Event:
    """A text, a button press (current, stale, or made up) or a command."""
    hint = draw(LOCALE_HINT)
    kind = pick(draw, KINDS)
    if kind == "text":
        return TextReceived(person, draw(TEXT), pick(draw, (0, 0, 0, 1, 3)), hint)
    if kind == "choice":
        current = choice_ids(session) if session else []
        source = pick(draw, ("current", "stale", "made up"))
        if source == "current" and current:
            return ChoiceSelected(person, pick(draw, current), pick(draw, (session.node, None)))
        if source == "stale":  # a button still on screen from an earlier step
            old = pick(draw, STALE_FROM)
            return ChoiceSelected(person, pick(draw, STATIC_CHOICES[old]), old, hint)
        return ChoiceSelected(person, draw(MADE_UP_CHOICE), draw(ANY_NODE), hint)
    community = draw(COMMUNITY) if draw(BOOL) else None
    return CommandInvoked(person, draw(COMMAND), community, draw(EVIDENCE), hint)


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if c.isalnum())


def picks_confirm(session: Session, event: Event) -> bool:
    """Is this event the person choosing "confirm" at the review step?"""
    if session.node != REVIEW:
        return False
    if isinstance(event, ChoiceSelected):
        return event.choice == "report.confirm" and event.node in (None, REVIEW)
    if not isinstance(event, TextReceived):
        return False
    text = clean_text(event.text).strip()
    choices = ENGINE.render_current(session).choices
    number = re.fullmatch(r"#?(\d{1,3})[.)]?", text)
    if number:
        index = int(number.group(1)) - 1
        return 0 <= index < len(choices) and choices[index].id == "report.confirm"
    label = next(c.label for c in choices if c.id == "report.confirm")
    return bool(_fold(text)) and _fold(text) == _fold(label)


def check_outcome(session: Session, event: Event, outcome: Outcome, reset: bool = False) -> None:
    """One step's effects. ``reset``: the conversation had been idle long enough to restart."""
    effects = outcome.effects
    changes = [
        e
        for e in effects
        if isinstance(e, ListCommunities | ListReports | AddNote | SubmitReport | ForgetPerson)
    ]
    assert any(isinstance(e, Reply) for e in effects) or changes, effects
    submits = [e for e in effects if isinstance(e, SubmitReport)]
    if submits:
        assert not reset and picks_confirm(session, event), (session.node, event)
        [submit] = submits
        assert submit.draft == session.draft, "sent something other than what was reviewed"
        assert submit.reference == session.vars["reference"], "reference changed after review"
    if outcome.session is None:
        assert any(isinstance(e, ForgetPerson) for e in effects)
        assert session.node == "forget.confirm", session.node
    else:
        assert outcome.session.node in FLOW.nodes
        assert outcome.session.person == session.person
    for effect in effects:
        if isinstance(effect, Reply):
            check_message(effect.message, set())


@dataclass
class Supplied:
    """Text that came from the person or the platform, cleaned as the engine cleans it."""

    texts: set[str] = field(default_factory=set)

    def add(self, text: str | None) -> None:
        if text:
            self.texts.add(clean_text(text))

    def covers(self, shown: str) -> bool:
        return any(shown in t for t in self.texts)


SENTINEL = "\u27e6"  # never in content: marks text that came from outside


def check_message(message: Message, supplied: set[str] | Supplied) -> None:
    """Outside text only ever travels in untrusted spans (and community choice labels)."""
    for span in message.spans:
        if not span.untrusted:
            assert SENTINEL not in span.text, f"outside text in a trusted span: {span.text!r}"
        elif SENTINEL in span.text and isinstance(supplied, Supplied):
            for piece in span.text.split("\n"):
                assert SENTINEL not in piece or supplied.covers(piece), piece
    for choice in message.choices:
        if SENTINEL in choice.label:
            assert choice.id.startswith("community."), choice
            if isinstance(supplied, Supplied):
                assert supplied.covers(choice.label), choice


@pytest.mark.parametrize("node", sorted(FLOW.nodes))
@examples(50)
@given(data=st.data())
def test_one_step_from_every_node_with_any_event(node: str, data: st.DataObject) -> None:
    session = session_at(data.draw, node)
    for _ in range(3):
        event = event_for(data.draw, session)
        later = data.draw(st.sampled_from([0.0, 1.0, IDLE - 1, IDLE + 1]))
        outcome = ENGINE.step(session, event, NOW + later, token="tok")
        check_outcome(session, event, outcome, reset=later > IDLE)


@pytest.mark.parametrize("node", sorted(FLOW.nodes))
@examples(2)
@given(data=st.data())
def test_huge_text_at_every_node(node: str, data: st.DataObject) -> None:
    session = session_at(data.draw, node)
    event = TextReceived(ME, data.draw(HUGE), data.draw(st.sampled_from([0, 1])))
    check_outcome(session, event, ENGINE.step(session, event, NOW + 1, token="tok"))


# --- 3. sequences from a fresh session ----------------------------------------------------------
def marked_text(draw: Draw, number: int) -> str:
    """Outside text that starts with a sentinel, so it can be traced into replies."""
    return f"{SENTINEL}{number}{draw(TEXT)}"


MY_REPORTS = (
    ReportSummary("R-AAAA", "Home", "new", True),
    ReportSummary("R-BBBB", "Other *place*", "resolved", False),
)


def drive(
    session: Session | None, event: Event, now: float, communities: tuple[Community, ...]
) -> tuple[Session | None, list[Message], list[object]]:
    """Step like the service does, answering ListCommunities and SubmitReport."""
    replies: list[Message] = []
    effects: list[object] = []
    pending = [event]
    while pending:
        current = pending.pop(0)
        before = session
        outcome = ENGINE.step(session, current, now, token=f"t{len(effects)}")
        if before is not None and isinstance(current, TextReceived | ChoiceSelected):
            check_outcome(before, current, outcome, reset=now - before.updated_at > IDLE)
        session = outcome.session
        for effect in outcome.effects:
            effects.append(effect)
            if isinstance(effect, Reply):
                replies.append(effect.message)
            elif isinstance(effect, ListCommunities):
                pending.append(CommunitiesListed(current.person, communities))
            elif isinstance(effect, ListReports):
                pending.append(ReportsListed(current.person, MY_REPORTS))
            elif isinstance(effect, AddNote):
                pending.append(NoteAdded(current.person, effect.reference, ok=True))
            elif isinstance(effect, SubmitReport):
                pending.append(ReportSubmitted(current.person, effect.reference))
    return session, replies, effects


GAPS = (1.0, 1.0, 1.0, 60.0, IDLE + 1)


@examples(400)
@given(data=st.data())
def test_random_conversations(data: st.DataObject) -> None:
    draw: Draw = data.draw
    supplied = Supplied()
    names = [marked_text(draw, 0) for _ in range(pick(draw, (2, 1, 0, 3, 30)))]
    communities = tuple(Community(CommunityId("test", f"g{i}"), n) for i, n in enumerate(names))
    for community in communities:
        supplied.add(community.name)
    # Mostly random; or walking the buttons on screen; or a whole report with random events
    # slipped in (each may derail it, which is the point).
    mode = pick(draw, ("script", "walk", "random", "script"))
    script = report_script(draw, len(communities)) if mode == "script" else []
    length = len(script) + draw(_index(6)) if script else draw(st.integers(1, 30))
    crisis_at = draw(_index(length + 1))
    session: Session | None = None
    now = NOW
    for index in range(length + 1):
        gap = pick(draw, GAPS)
        now += gap
        if index == crisis_at:
            attachments = pick(draw, (0, 0, 1))
            event: Event = TextReceived(ME, pick(draw, CRISIS), attachments)
        elif script and draw(_index(8)) < 7:  # now and then, something else first
            event = script.pop(0)
            if isinstance(event, TextReceived) and event.text.startswith("typed"):
                text = marked_text(draw, index)
                if event.text.endswith("link"):
                    text += f" {pick(draw, LINKS)}"
                event = replace(event, text=text)
                supplied.add(text)
            elif isinstance(event, ChoiceSelected) and event.node is None and session:
                event = replace(event, node=session.node)
        elif mode == "walk" and session is not None and draw(_index(10)) < 9:
            current = choice_ids(session)
            event = (
                ChoiceSelected(ME, pick(draw, current), session.node)
                if current
                else event_for(draw, session)
            )
        else:
            event = sequence_event(draw, session, index, supplied)
        session, replies, _ = drive(session, event, now, communities)
        for message in replies:
            check_message(message, supplied)
        if index == crisis_at:
            assert replies and replies[0].urgent, [m.text[:60] for m in replies]
        assert session is None or session.node in FLOW.nodes


def report_script(draw: Draw, communities: int) -> list[Event]:
    """The events of a whole report, with the typed steps typed or skipped at random."""
    script: list[Event] = [
        TextReceived(ME, pick(draw, ("hi", "tell the mods", "help"))),
        ChoiceSelected(ME, "report", None),
        ChoiceSelected(ME, "report.go", None),
        ChoiceSelected(ME, f"community.{draw(_index(max(communities, 1)))}", None),
        ChoiceSelected(ME, pick(draw, ("cat.threats", "cat.money", "cat.other")), None),
    ]
    for node in ("report.who", "report.details", "report.evidence"):
        skip = ChoiceSelected(ME, "skip", node)
        typed = TextReceived(ME, "typed link" if node == "report.evidence" else "typed")
        script.append(skip if draw(BOOL) else typed)  # the text is drawn when it is sent
    script.append(ChoiceSelected(ME, pick(draw, ("identity.share", "identity.anonymous")), None))
    script.append(ChoiceSelected(ME, pick(draw, ("report.confirm", "report.cancel")), None))
    return script


def sequence_event(draw: Draw, session: Session | None, index: int, supplied: Supplied) -> Event:
    event = event_for(draw, session)
    if isinstance(event, TextReceived) and draw(BOOL):
        text = marked_text(draw, index)
        event = replace(event, text=text)
        supplied.add(text)
    elif isinstance(event, ChoiceSelected) and session is not None and draw(BOOL):
        current = choice_ids(session)
        if current:  # mostly walk the flow for real, to get deep into it
            event = ChoiceSelected(ME, pick(draw, current), session.node)
    elif isinstance(event, CommandInvoked):
        if event.community is not None:
            name = marked_text(draw, index)
            event = replace(event, community=replace(event.community, name=name))
            supplied.add(name)
        if event.evidence is not None:
            supplied.add(event.evidence)
    return event


# --- 4. the whole service on the memory store ---------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    bot: MemoryBot
    clock: FakeClock
    communities: list[Community]
    ever_stored: set[str] = field(default_factory=set)

    async def check(self) -> None:
        """Every stored report has its alert in the outbox; moderators only ever saw alerts of
        reports that were stored, each under its one key."""
        store = self.bot.service.store
        for community in self.communities:
            for report in await store.reports_for_community(community.id):
                self.ever_stored.add(report.reference)
                item = await store.get_outbox_item(f"alert:{report.reference}")
                assert item is not None, f"report {report.reference} without an alert"
                assert item.reference == report.reference
                assert item.community == report.community == community.id
        for sent in self.bot.platform.seen.values():
            if sent.kind == "alert":
                assert sent.alert is not None and sent.key == f"alert:{sent.alert.reference}"
                assert sent.alert.reference in self.ever_stored, sent.key


ACTIONS = ("event",) * 3 + ("walk",) * 5 + ("report",) * 3 + ("deliver", "mod") * 2 + ("world",)
MOD_ACTIONS = ("ack", "claim", "resolve", "ACK", "x", "")
CHANGES = ("down", "up", "leave", "join", "time", "forget")
JUMPS = (1.0, 30.0, IDLE + 1, 91 * 86400.0)


async def full_report(world: World, draw: Draw, person: PersonId) -> None:
    bot = world.bot
    await bot.say(person, pick(draw, ("hi", "tell the mods", "report")))
    await bot.press(person, "report", "menu")
    offered = await bot.press(person, "report.go", "report.start")
    picks = [c.id for m in offered for c in m.choices if c.id.startswith("community.")]
    if not picks:
        return
    await bot.press(person, pick(draw, picks), "report.community")
    await bot.press(
        person, pick(draw, ("cat.threats", "cat.money", "cat.other")), "report.category"
    )
    for node in ("report.who", "report.details", "report.evidence"):
        if draw(BOOL):
            await bot.say(person, draw(TEXT))
        else:
            await bot.press(person, "skip", node)
    await bot.press(person, pick(draw, ("identity.share", "identity.anonymous")), "report.identity")
    await bot.press(person, pick(draw, ("report.confirm", "report.confirm", "report.cancel")))


async def traffic(draw: Draw, store: Store) -> None:
    clock = FakeClock()
    outbox = OutboxSettings(max_attempts=3, base_delay=1.0, max_delay=4.0)
    bot = MemoryBot(ENGINE, store, Settings(database_url="memory", outbox=outbox), clock=clock)
    communities = [
        await bot.setup_community(f"g{i}", draw(TEXT), destination=f"mods{i}")
        for i in range(draw(st.integers(1, 3)))
    ]
    stranger = bot.platform.add_community("g-unset", draw(TEXT))  # no moderators set up
    people = [bot.person(draw(IDS)) for _ in range(draw(st.integers(1, 3)))]
    for person in people:
        for community in [*communities, stranger]:
            if draw(BOOL):
                bot.platform.join(person, community)
    bot.platform.join(people[0], communities[0])
    world = World(bot, clock, communities)
    last: dict[PersonId, tuple[Message, ...]] = {}
    for _ in range(draw(st.integers(1, 30))):
        action = pick(draw, ACTIONS)
        person = pick(draw, people)
        if action == "event":
            event = event_for(draw, None, person)
            if isinstance(event, CommandInvoked) and event.community and draw(BOOL):
                event = replace(event, community=pick(draw, [*communities, stranger]))
            last[person] = await bot.send(event)
        elif action == "walk":
            choices = [(c.id, m.node) for m in last.get(person, ()) for c in m.choices]
            if choices:
                choice, node = pick(draw, choices)
                last[person] = await bot.press(person, choice, node)
            else:
                last[person] = await bot.say(person, draw(TEXT))
        elif action == "report":
            await full_report(world, draw, person)
        elif action == "deliver":
            await bot.deliver()
        elif action == "mod":
            community = pick(draw, communities)
            stored = await bot.service.store.reports_for_community(community.id)
            known = [r.reference for r in stored]
            reference = pick(draw, known) if known and draw(BOOL) else draw(TEXT)
            await bot.moderate(community, reference, pick(draw, MOD_ACTIONS), draw(TEXT))
        else:
            change = pick(draw, CHANGES)
            if change == "down":
                bot.platform.down.add(f"mods{draw(_index(3))}")
            elif change == "up":
                bot.platform.down.clear()
            elif change in ("leave", "join"):
                community = pick(draw, [*communities, stranger])
                getattr(bot.platform, change)(person, community)
            elif change == "forget":
                await bot.say(person, "forget me")
                last[person] = await bot.press(person, "forget.yes", "forget.confirm")
            else:
                clock.now += pick(draw, JUMPS)
                await bot.service.purge_expired()
        await world.check()
    # Back to normal: whatever was stored and not parked reaches its moderators.
    bot.platform.down.clear()
    for _ in range(3):
        clock.now += 3600
        await bot.deliver()
    await world.check()
    seen = {s.key for s in bot.platform.seen.values()}
    for community in communities:
        for report in await bot.service.store.reports_for_community(community.id):
            item = await bot.service.store.get_outbox_item(f"alert:{report.reference}")
            assert item is not None
            assert item.key in seen or item.parked, item


@examples(250)
@given(data=st.data())
def test_service_survives_random_traffic(data: st.DataObject) -> None:
    asyncio.run(traffic(data.draw, MemoryStore()))


@examples(60)
@given(data=st.data())
def test_service_survives_random_traffic_on_sqlite(data: st.DataObject) -> None:
    async def scenario() -> None:
        store = await SqliteStore.open(":memory:")
        try:
            await traffic(data.draw, store)
        finally:
            await store.close()

    asyncio.run(scenario())


# --- bugs found by the properties above ---------------------------------------------------------
def test_stale_walkthrough_of_a_removed_platform_renders() -> None:
    """A conversation stored at a walkthrough step for a platform the content no longer has
    (an update removed it) used to crash rendering (IndexError)."""
    session = Session(
        ME, "block.steps", "en", "US", NOW, vars={"app": "myspace", "device": "mobile"}
    )
    for event in (ChoiceSelected(ME, "step.back", "block.steps"), TextReceived(ME, "hi")):
        outcome = ENGINE.step(session, event, NOW + 1, token="tok")
        assert any(isinstance(e, Reply) for e in outcome.effects)


@pytest.mark.parametrize("gap", [1.0, IDLE + 1])
def test_crisis_reply_comes_first_even_with_an_attachment_or_after_a_gap(gap: float) -> None:
    """The attachment warning, or "welcome back" after an idle gap, used to come first."""
    session = ENGINE.new_session(ME, NOW)
    outcome = ENGINE.step(session, TextReceived(ME, "i want to die", attachments=1), NOW + gap)
    replies = [e.message for e in outcome.effects if isinstance(e, Reply)]
    assert replies[0].urgent, [m.text[:40] for m in replies]
