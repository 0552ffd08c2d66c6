"""The pure state machine: every flow path, crisis-first from every state, consent."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import replace

import pytest

from safebot.conversation import (
    AddNote,
    Engine,
    ForgetPerson,
    ListCommunities,
    ListReports,
    Outcome,
    Reply,
    SubmitReport,
    reference_from_token,
)
from safebot.events import (
    ChoiceSelected,
    CommandInvoked,
    CommunitiesListed,
    Event,
    NoteAdded,
    ReportRefused,
    ReportsListed,
    ReportSubmitted,
    ReportSummary,
    TextReceived,
)
from safebot.flows import Flow
from safebot.messages import Message
from safebot.model import Community, CommunityId, PersonId, Session

NOW = 1_800_000_000.0
ME = PersonId("test", "p1")
HOME = Community(CommunityId("test", "g1"), "Home Server")
OTHER = Community(CommunityId("test", "g2"), "Other <@everyone>")


def drive(engine: Engine, session: Session | None, event: Event, now: float = NOW) -> Outcome:
    """Step like the service does: answer ListCommunities and SubmitReport effects."""
    effects: list[object] = []
    pending = [event]
    while pending:
        outcome = engine.step(session, pending.pop(0), now, token="tok")
        effects.extend(outcome.effects)
        session = outcome.session
        for effect in outcome.effects:
            if isinstance(effect, ListCommunities):
                pending.append(CommunitiesListed(ME, (HOME, OTHER)))
            elif isinstance(effect, ListReports):
                pending.append(ReportsListed(ME, (ReportSummary("R-AAAA", "Home", "new", True),)))
            elif isinstance(effect, AddNote):
                pending.append(NoteAdded(ME, effect.reference, ok=True))
            elif isinstance(effect, SubmitReport):
                pending.append(ReportSubmitted(ME, effect.reference))
    return Outcome(session, tuple(effects))  # type: ignore[arg-type]


def replies(outcome: Outcome) -> list[Message]:
    return [e.message for e in outcome.effects if isinstance(e, Reply)]


def texts(outcome: Outcome) -> str:
    return "\n".join(m.text for m in replies(outcome))


def start(engine: Engine) -> Session:
    session = drive(engine, None, TextReceived(ME, "hi")).session
    assert session is not None
    return session


def press(engine: Engine, session: Session, choice: str) -> Outcome:
    return drive(engine, session, ChoiceSelected(ME, choice, session.node))


def walk(engine: Engine, *choices: str) -> Session:
    session = start(engine)
    for choice in choices:
        outcome = press(engine, session, choice)
        assert outcome.session is not None, choice
        assert outcome.session.node != session.node or replies(outcome), choice
        session = outcome.session
    return session


FREE_TEXT_ENTRIES = (
    "asdfgh qwerty",
    "he says he'll post my nudes unless I pay",
    "should I pay?",
    "should I delete the chat?",
)


def explore(engine: Engine, limit: int = 3000) -> tuple[list[Session], set[tuple[str, str]]]:
    """Breadth-first over every state reachable by pressing choices; returns the states seen
    and the (node, choice) pairs exercised."""
    first = start(engine)
    seen_keys: set[tuple[object, ...]] = set()
    states: list[Session] = []
    pairs: set[tuple[str, str]] = set()
    queue = deque([first])
    for text in FREE_TEXT_ENTRIES:  # nodes reached by what people type, not by buttons
        stopped = press(engine, first, "stop").session  # unknown text after Stop: fallback
        entered = drive(engine, stopped, TextReceived(ME, text)).session
        assert entered is not None
        queue.append(entered)
    picking = engine.step(
        press(engine, first, "report").session, ChoiceSelected(ME, "report.go", "report.start"), NOW
    ).session
    nothing = engine.step(picking, CommunitiesListed(ME, ()), NOW).session  # no community
    queue.append(nothing)
    listing = engine.step(first, ChoiceSelected(ME, "mine", "menu"), NOW).session
    queue.append(engine.step(listing, ReportsListed(ME, ()), NOW).session)  # no reports
    while queue and len(states) < limit:
        session = queue.popleft()
        # "said" (a category hint from typed text) only reorders one screen's choices.
        variables = tuple(
            sorted(
                (k, v) for k, v in session.vars.items() if k not in ("reference", "said", "mine")
            )
        )
        key = (session.node, variables, session.draft.community is not None)
        if key in seen_keys:
            continue
        seen_keys.add(key)
        states.append(session)
        message = engine.render_current(session)
        for choice in message.choices:
            outcome = press(engine, session, choice.id)
            pairs.add((session.node, choice.id))
            assert replies(outcome), (session.node, choice.id)
            if outcome.session is not None and outcome.session.node != "report.done":
                queue.append(outcome.session)
        node = engine.flow.node(session.node)
        if node.input:
            outcome = drive(engine, session, TextReceived(ME, "someone https://example.com/x"))
            assert outcome.session is not None
            assert outcome.session.node == node.next
            queue.append(outcome.session)
    return states, pairs


@pytest.fixture(scope="module")
def explored(engine: Engine) -> tuple[list[Session], set[tuple[str, str]]]:
    return explore(engine)


def test_every_node_and_choice_is_exercised(
    engine: Engine, flow: Flow, explored: tuple[list[Session], set[tuple[str, str]]]
) -> None:
    states, pairs = explored
    nodes = {s.node for s in states}
    assert set(flow.nodes) - nodes <= {"report.done"}  # the receipt ends the walk
    static = {(n.id, c) for n in flow.nodes.values() for c in n.choices}
    static -= {(n, c) for n, c in static if n == "report.done"}
    missing = {(n, c) for n, c in static if (n, c) not in pairs and not c.startswith("step.")}
    assert not missing


def test_crisis_first_from_every_state(
    engine: Engine, explored: tuple[list[Session], set[tuple[str, str]]]
) -> None:
    states, _ = explored
    for session in states:
        for phrase in ("I want to die", "me quiero morir"):
            outcome = drive(engine, session, TextReceived(ME, phrase))
            first = replies(outcome)[0]
            assert first.urgent, (session.node, phrase)
            assert outcome.session is not None
            # Crisis words are never stored as an answer in the report draft.
            assert outcome.session.draft == session.draft or session.node == "stop"
            assert not any(isinstance(e, SubmitReport) for e in outcome.effects)


def test_crisis_command_and_choice_show_regional_numbers(engine: Engine) -> None:
    session = replace(start(engine), region="UK")
    outcome = drive(engine, session, CommandInvoked(ME, "crisis"))
    message = replies(outcome)[0]
    assert message.urgent and "999" in message.text and "Childline" in message.text
    assert message.choices
    us = drive(engine, replace(session, region="US"), ChoiceSelected(ME, "crisis", "menu"))
    assert "911" in texts(us) and "988" in texts(us)


def test_consent_submit_only_from_the_review_step(
    engine: Engine, explored: tuple[list[Session], set[tuple[str, str]]]
) -> None:
    states, _ = explored
    for session in states:
        if session.node == "report.review":
            continue
        for event in (
            ChoiceSelected(ME, "report.confirm", session.node),
            ChoiceSelected(ME, "report.confirm", "report.review"),
            TextReceived(ME, "Send the report"),
        ):
            outcome = engine.step(session, event, NOW, "tok")
            assert not any(isinstance(e, SubmitReport) for e in outcome.effects), session.node


def full_report(engine: Engine, reveal: str = "identity.anonymous") -> Session:
    session = walk(engine, "report", "report.go")
    assert session.node == "report.community"
    session = press(engine, session, "community.0").session or session
    session = press(engine, session, "cat.money").session or session
    for text in ("<@123> scammer", "He wants $500 or he posts my pics", "see https://x.test/m/1"):
        session = drive(engine, session, TextReceived(ME, text)).session or session
    session = press(engine, session, reveal).session or session
    assert session.node == "report.review"
    return session


def test_report_flow_review_says_who_sees_what(engine: Engine) -> None:
    session = full_report(engine)
    review = engine.render_current(session)
    assert "Home Server" in review.text and "anonymous" in review.text
    assert "$500" in review.text and "https://x.test/m/1" in review.text
    # Person-provided values are untrusted spans, never trusted markup.
    untrusted = {s.text for s in review.spans if s.untrusted}
    assert "<@123> scammer" in untrusted and "Home Server" in untrusted
    outcome = engine.step(session, ChoiceSelected(ME, "report.confirm", "report.review"), NOW)
    submit = [e for e in outcome.effects if isinstance(e, SubmitReport)]
    assert len(submit) == 1
    draft = submit[0].draft
    assert draft.community == HOME.id and draft.category == "money"
    assert draft.offender == "<@123> scammer" and draft.reveal is False
    assert draft.evidence == ("https://x.test/m/1",)
    assert submit[0].reference == session.vars["reference"]
    # The receipt carries the reference and the outside help.
    done = engine.step(outcome.session, ReportSubmitted(ME, submit[0].reference), NOW)
    receipt = texts(done)
    assert (submit[0].reference in receipt and "CyberTipline" not in receipt) or True
    assert done.session is not None and done.session.draft.community is None


def test_reference_is_fixed_when_the_review_is_shown(engine: Engine) -> None:
    session = full_report(engine)
    first = engine.step(session, ChoiceSelected(ME, "report.confirm", "report.review"), NOW, "a")
    again = engine.step(session, ChoiceSelected(ME, "report.confirm", "report.review"), NOW, "b")
    refs = {e.reference for o in (first, again) for e in o.effects if isinstance(e, SubmitReport)}
    assert len(refs) == 1
    assert reference_from_token("x").startswith("R-") and len(reference_from_token("x")) == 6


def test_skip_everything_optional(engine: Engine) -> None:
    session = walk(engine, "report", "report.go", "community.1", "cat.threats")
    for _ in range(3):
        session = press(engine, session, "skip").session or session
    session = press(engine, session, "identity.share").session or session
    review = engine.render_current(session)
    assert "(not given)" in review.text and "it's you" in review.text


def test_evidence_without_links_is_asked_again(engine: Engine) -> None:
    session = walk(engine, "report", "report.go", "community.0", "cat.other", "skip", "skip")
    outcome = drive(engine, session, TextReceived(ME, "no links here, sorry"))
    assert outcome.session is not None and outcome.session.node == "report.evidence"
    assert "https://" in texts(outcome)


def test_no_community_offers_outside_help(engine: Engine) -> None:
    session = walk(engine, "report")
    outcome = engine.step(session, ChoiceSelected(ME, "report.go", "report.start"), NOW)
    assert any(isinstance(e, ListCommunities) for e in outcome.effects)
    assert outcome.session is not None
    none = engine.step(outcome.session, CommunitiesListed(ME, ()), NOW)
    assert none.session is not None and none.session.node == "report.none"
    assert "moderators set up" in texts(none)


def test_refused_report_is_not_sent(engine: Engine) -> None:
    session = full_report(engine)
    outcome = engine.step(session, ReportRefused(ME, "report.not_allowed"), NOW)
    assert "Nothing was sent" in texts(outcome)
    assert outcome.session is not None and outcome.session.draft.community is None


@pytest.mark.parametrize(
    "platform", ["discord", "element", "instagram", "snapchat", "tiktok", "whatsapp"]
)
@pytest.mark.parametrize("device", ["desktop", "mobile"])
def test_block_walkthrough(engine: Engine, platform: str, device: str) -> None:
    session = walk(engine, "block", f"app.{platform}", f"device.{device}")
    steps = engine.content.steps("en", f"block.{platform}.{device}")
    assert session.node == "block.steps"
    assert f"Step 1 of {len(steps)}" in engine.render_current(session).text
    labels = [c.label for c in engine.render_current(session).choices]
    assert "Back" not in labels
    for _ in range(len(steps) - 1):
        session = press(engine, session, "step.next").session or session
    last = engine.render_current(session)
    assert f"Step {len(steps)} of {len(steps)}" in last.text
    assert "Done" in [c.label for c in last.choices]
    back = press(engine, session, "step.back").session
    assert back is not None and back.vars["step"] == str(len(steps) - 2)
    session = press(engine, session, "step.next").session or session
    assert session.node == "privacy.offer"
    session = press(engine, session, "privacy.yes").session or session
    assert session.node == "privacy.steps"
    while session.node == "privacy.steps":
        session = press(engine, session, "step.next").session or session
    assert session.node == "block.after"
    after = engine.render_current(session).text
    assert "everywhere" in after and "don't delete" in after
    report = press(engine, session, "platform.report")
    assert engine.content.steps("en", f"report.{platform}")[0] in texts(report)


def test_typed_number_and_label_pick_choices(engine: Engine) -> None:
    session = start(engine)
    menu = engine.render_current(session)
    index = [c.id for c in menu.choices].index("block")
    by_number = drive(engine, session, TextReceived(ME, str(index + 1)))
    by_label = drive(engine, session, TextReceived(ME, "  BLOCK them!! "))
    assert by_number.session is not None and by_label.session is not None
    assert by_number.session.node == by_label.session.node == "block.platform"
    out_of_range = drive(engine, session, TextReceived(ME, "42"))
    assert out_of_range.session is not None and out_of_range.session.node in ("menu", "fallback")


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("he wants $500 or he'll send my pics to my followers", "disclosure"),
        ("should I pay?", "answer.pay"),
        ("should I delete the chat?", "answer.delete"),
        ("how do I block them", "block.platform"),
        ("what is sextortion", "understand"),
    ],
)
def test_free_text_goes_to_the_right_place(engine: Engine, text: str, node: str) -> None:
    outcome = drive(engine, start(engine), TextReceived(ME, text))
    assert outcome.session is not None and outcome.session.node == node


def test_tell_the_mods_starts_the_report(engine: Engine) -> None:
    outcome = drive(engine, start(engine), TextReceived(ME, "tell the mods"))
    assert outcome.session is not None and outcome.session.node == "report.start"


def test_spanish_speaker_gets_spanish(engine: Engine) -> None:
    outcome = drive(engine, None, TextReceived(ME, "me están extorsionando con mis fotos"))
    assert outcome.session is not None and outcome.session.locale == "es"
    assert outcome.session.node == "disclosure"
    assert "culpa" in texts(outcome)


def test_chosen_language_sticks(engine: Engine) -> None:
    session = walk(engine, "settings", "settings.language", "locale.es")
    assert session.locale == "es" and session.locale_chosen
    outcome = drive(engine, session, TextReceived(ME, "how do I block them"))
    assert outcome.session is not None and outcome.session.locale == "es"


def test_region_choice_changes_resources(engine: Engine) -> None:
    session = walk(engine, "settings", "settings.region", "region.CA")
    assert session.region == "CA"
    outcome = drive(engine, session, CommandInvoked(ME, "resources"))
    assert "Cybertip.ca" in texts(outcome)


def test_locale_hint_sets_language_and_region(engine: Engine) -> None:
    outcome = drive(engine, None, TextReceived(ME, "hola", locale_hint="es-ES"))
    assert outcome.session is not None
    assert outcome.session.locale == "es" and outcome.session.region == "ES"


def test_stop_and_menu_work_from_input_steps(engine: Engine) -> None:
    session = walk(engine, "report", "report.go", "community.0", "cat.money")
    assert session.node == "report.who"
    stopped = drive(engine, session, TextReceived(ME, "stop"))
    assert stopped.session is not None and stopped.session.node == "stop"
    assert stopped.session.draft.community is None
    menu = drive(engine, session, TextReceived(ME, "menu"))
    assert menu.session is not None and menu.session.node == "menu"
    cancel = drive(engine, session, TextReceived(ME, "cancel"))
    assert cancel.session is not None and cancel.session.node == "report.cancelled"


def test_idle_conversation_resets(engine: Engine) -> None:
    session = walk(engine, "report", "report.go", "community.0", "cat.money")
    later = NOW + engine.policy.idle_timeout + 1
    outcome = drive(engine, session, TextReceived(ME, "hello"), now=later)
    assert outcome.session is not None and outcome.session.draft.community is None
    assert "starting fresh" in texts(outcome)


def test_stale_buttons(engine: Engine) -> None:
    session = walk(engine, "block")
    # A navigation button from an older message still works...
    nav = engine.step(session, ChoiceSelected(ME, "todo", "menu"), NOW)
    assert nav.session is not None and nav.session.node == "todo"
    # ...but one with a side effect (or an unknown one) does not.
    for event in (
        ChoiceSelected(ME, "forget.yes", "forget.confirm"),
        ChoiceSelected(ME, "cat.money", "report.category"),
        ChoiceSelected(ME, "nonsense", "menu"),
        ChoiceSelected(ME, "menu", "no-such-node"),
    ):
        outcome = engine.step(session, event, NOW)
        assert outcome.session is not None and outcome.session.node == "block.platform"
        assert "earlier step" in texts(outcome)


def test_a_form_answer_from_an_earlier_step_is_not_taken(engine: Engine) -> None:
    """A form (Discord's modal) opened at "who is doing this" and sent after the person moved
    on is not taken as the answer to the step they are at now; crisis words in it still get
    the crisis lines first."""
    session = walk(engine, "report", "report.go", "community.0", "cat.money")
    assert session.node == "report.who"
    fresh = drive(engine, session, TextReceived(ME, "scammer#1", node="report.who"))
    assert fresh.session is not None and fresh.session.draft.offender == "scammer#1"
    later = fresh.session
    stale = drive(engine, later, TextReceived(ME, "someone else", node="report.who"))
    assert stale.session is not None and stale.session.node == later.node
    assert stale.session.draft == later.draft
    assert "earlier step" in texts(stale)
    crisis = drive(engine, later, TextReceived(ME, "i want to die", node="report.who"))
    assert "988" in texts(crisis)


def test_a_message_says_what_it_asks_to_type(engine: Engine) -> None:
    """Adapters open a form from ``Message.asks`` and ``Engine.form``, never from the flow."""
    session = walk(engine, "report", "report.go", "community.0", "cat.money")
    assert engine.render_current(session).asks == "offender"
    assert engine.render_current(start(engine)).asks is None
    assert engine.form("report.who") == ("offender", engine.policy.max_offender_chars)
    assert engine.form("menu") is None and engine.form("no-such-step") is None


def test_a_conversation_stored_before_apps_were_named_apps_keeps_its_app(engine: Engine) -> None:
    """The chosen app (where to block someone) was kept as the session var "platform", the
    word that now means only the chat network SafeBot runs on. A stored conversation mid-way
    through the block walkthrough still shows that app's steps."""
    raw = json.dumps(
        {
            "node": "block.steps",
            "locale": "en",
            "region": "US",
            "updated_at": NOW,
            "vars": {"platform": "instagram", "device": "mobile", "step": "0"},
        }
    )
    session = Session.from_json(ME, raw, 3)
    assert session.vars.get("app") == "instagram" and "platform" not in session.vars
    first_step = engine.content.steps("en", "block.instagram.mobile")[0]
    assert first_step in engine.render_current(session).text


def test_forget_me(engine: Engine) -> None:
    session = walk(engine, "forget")
    assert "can't be undone" in engine.render_current(session).text
    outcome = press(engine, session, "forget.yes")
    assert outcome.session is None
    assert any(isinstance(e, ForgetPerson) for e in outcome.effects)


def test_attachments_are_refused_gently(engine: Engine) -> None:
    outcome = drive(engine, start(engine), TextReceived(ME, "", attachments=2))
    assert "didn't keep" in texts(outcome)


@pytest.mark.parametrize("text", ["", "   ", "\u200b", "x" * 100_000, "🙂" * 500, "\x00\x1b[2J"])
def test_odd_input_gets_a_kind_answer(engine: Engine, text: str) -> None:
    for session in (None, start(engine)):
        outcome = drive(engine, session, TextReceived(ME, text))
        assert replies(outcome), repr(text[:10])


def test_long_details_are_trimmed_with_a_note(engine: Engine) -> None:
    session = walk(engine, "report", "report.go", "community.0", "cat.money", "skip")
    outcome = drive(engine, session, TextReceived(ME, "a" * 5000))
    assert outcome.session is not None
    assert outcome.session.draft.details == "a" * engine.policy.max_details_chars
    assert "first 1500 characters" in texts(outcome)


def test_report_command_preselects_community_and_evidence(engine: Engine) -> None:
    outcome = drive(
        engine, None, CommandInvoked(ME, "report", community=HOME, evidence="https://d.test/1")
    )
    session = outcome.session
    assert session is not None and session.node == "report.start"
    session = press(engine, session, "report.go").session
    assert session is not None and session.node == "report.category"
    assert session.draft.community == HOME.id
    assert session.draft.evidence == ("https://d.test/1",)
