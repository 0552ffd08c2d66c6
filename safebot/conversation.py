"""The conversation state machine: ``Engine.step(session, event, now, token)``.

Pure: no I/O, no clock, no randomness. It returns the new session and a tuple of effects
that the service layer carries out (reply, list communities, submit report, forget person).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field, replace

from safebot.content import Content
from safebot.events import (
    ChoiceSelected,
    CommandInvoked,
    CommunitiesListed,
    Event,
    NoteAdded,
    ReportRefused,
    ReportsListed,
    ReportSubmitted,
    TextReceived,
)
from safebot.flows import CRISIS_NODE, FALLBACK_NODE, REQUIRED_INTENTS, ChoiceDef, Flow, Node
from safebot.messages import Choice, Message, Span, clean_text
from safebot.model import URGENCY, Community, Draft, PersonId, Session
from safebot.recognise import Recogniser, Recognition
from safebot.render import evidence_links, generated

__all__ = [
    "AddNote",
    "Effect",
    "Engine",
    "ForgetPerson",
    "ListCommunities",
    "ListReports",
    "Outcome",
    "Policy",
    "Reply",
    "SubmitReport",
    "reference_from_token",
]


# --- effects ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Reply:
    message: Message


@dataclass(frozen=True, slots=True)
class ListCommunities:
    """Ask the platform where this person may report; answered with CommunitiesListed."""


@dataclass(frozen=True, slots=True)
class SubmitReport:
    """Store the confirmed draft under ``reference``; answered with ReportSubmitted."""

    draft: Draft
    reference: str
    locale: str
    urgent: tuple[str, ...] = ()
    """Why moderators should look first (``safebot.model.URGENCY``)."""


@dataclass(frozen=True, slots=True)
class ForgetPerson:
    """Delete the person's state and unlink them from their reports."""


@dataclass(frozen=True, slots=True)
class ListReports:
    """Ask for the person's own reports; answered with ReportsListed."""


@dataclass(frozen=True, slots=True)
class AddNote:
    """Send ``text`` to the moderators under the person's open report ``reference``;
    answered with NoteAdded."""

    reference: str
    text: str
    key: str
    """The delivery's idempotency key, from the step's token: a message handled again after a
    crash queues the same note, not a second one."""


Effect = Reply | ListCommunities | SubmitReport | ForgetPerson | ListReports | AddNote


@dataclass(frozen=True, slots=True)
class Outcome:
    session: Session | None  # None: delete the stored session
    effects: tuple[Effect, ...]


@dataclass(frozen=True, slots=True)
class Policy:
    idle_timeout: float = 30 * 60.0
    max_offender_chars: int = 200
    max_details_chars: int = 1500
    max_evidence_chars: int = 1000  # a form's box for links (up to 10 links are kept)
    retention_days: int = 90
    default_region: str = ""  # the deployment's region; "" = the content's default (INTL)

    def input_limit(self, field: str) -> int:
        """How much a person may type for an input node's ``field`` (forms use it as their
        box's size; the engine cuts what is longer)."""
        limits = {"offender": self.max_offender_chars, "evidence": self.max_evidence_chars}
        return limits.get(field, self.max_details_chars)  # details, note


# References: "R-" + 4 characters without look-alikes (no 0/O, 1/I/L, U).
_REF_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
_REFERENCE = re.compile(r"^R-[2-9A-HJKMNP-TV-Z]{4,8}$")
_NUMBER = re.compile(r"^\s*#?(\d{1,3})[.)]?\s*$")
# Actions a stale button (from an earlier step) may never trigger.
_FRESH_ONLY = frozenset({"submit", "forget", "step_next", "step_back", "skip", "cancel_report"})
_SHORT_WORDS = 3
_MAX_LISTED = 10
"""Reports "my reports" shows at most (the newest)."""
_KEPT_VARS = frozenset({"app", "device", "urgent.crisis", "urgent.deadline"})
"""Session variables a cancelled report keeps: the walkthrough's app and device, and whether
the person used crisis words or named a deadline (a report they start again is still urgent)."""
_CLEAR_WORDS = 2
"""Distinct words of a language that make a message clearly written in it."""


def reference_from_token(token: str, length: int = 4) -> str:
    """A short report reference derived from an opaque random token."""
    number = int.from_bytes(hashlib.sha256(token.encode("utf-8")).digest()[:8], "big")
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(_REF_ALPHABET))
        chars.append(_REF_ALPHABET[digit])
    return "R-" + "".join(chars)


def _no_community(effect: Effect) -> Effect:
    """A reply marked as saying the person shares no community to report to."""
    if isinstance(effect, Reply):
        return Reply(replace(effect.message, no_community=True))
    return effect


def _is_urgent(effect: Effect) -> bool:
    return isinstance(effect, Reply) and effect.message.urgent


def is_reference(text: str) -> bool:
    return bool(_REFERENCE.match(text))


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if c.isalnum())


@dataclass(slots=True)
class _Turn:
    """What one step accumulates: its effects, and the caller's random token."""

    token: str
    effects: list[Effect] = field(default_factory=list)


def open_references(session: Session) -> list[str]:
    """The references of the person's listed reports that are still open (may take a note)."""
    rows = [line.split("\t") for line in session.vars.get("mine", "").splitlines()]
    return [row[0] for row in rows if len(row) == 4 and row[2] == "1"]


class Engine:
    """Holds the immutable flow, content and recogniser; ``step`` is a pure function of them."""

    def __init__(
        self, flow: Flow, content: Content, recogniser: Recogniser, policy: Policy | None = None
    ) -> None:
        self.flow = flow
        self.content = content
        self.recogniser = recogniser
        self.policy = policy or Policy()

    # --- entry point --------------------------------------------------------------------
    def new_session(self, person: PersonId, now: float, hint: str | None = None) -> Session:
        return Session(
            person=person,
            node=self.flow.start,
            locale=self.content.locale_for_hint(hint) or self.content.default_locale,
            region=self._start_region(hint),
            updated_at=now,
        )

    def _start_region(self, hint: str | None) -> str:
        """The deployment's region if one is set, else a guess from the client's locale."""
        if self.policy.default_region in self.content.regions:
            return self.policy.default_region
        return self.content.region_for_hint(hint) or self.content.default_region

    def step(self, session: Session | None, event: Event, now: float, token: str = "") -> Outcome:
        """Advance one person's conversation by one event.

        ``token`` is a fresh random string from the caller, used only to mint a report
        reference when the review (consent) step is shown, so the function stays pure.
        """
        turn = _Turn(token)
        hint = getattr(event, "locale_hint", None)
        found = None
        if isinstance(event, TextReceived):
            found = self.recogniser.recognise(clean_text(event.text).strip())
        if session is None:
            session = self.new_session(event.person, now, hint)
            if found is not None:
                # The language comes from the text before anything is said, welcome included.
                # A client locale is the first guess: then it takes a clear sentence to change.
                hinted = self.content.locale_for_hint(hint) is not None
                session = self._follow_language(session, found, _CLEAR_WORDS if hinted else 1)
            if found is None or not found.crisis:
                turn.effects.append(self._say(session, "welcome.hello"))
        elif now - session.updated_at > self.policy.idle_timeout:
            session = self._reset(session)
            if isinstance(event, TextReceived | CommandInvoked):
                turn.effects.append(self._say(session, "welcome.back"))
        if session.node not in self.flow.nodes:
            session = self._reset(session)

        if isinstance(event, TextReceived) and found is not None:
            session = self._on_text(session, event, found, turn)
        elif isinstance(event, ChoiceSelected):
            session = self._on_choice(session, event, turn)
        elif isinstance(event, CommandInvoked):
            session = self._on_command(session, event, turn)
        elif isinstance(event, CommunitiesListed):
            session = self._on_communities(session, event, turn)
        elif isinstance(event, ReportsListed):
            session = self._on_reports(session, event, turn)
        elif isinstance(event, NoteAdded):
            key = "mine.note_sent" if event.ok else "mine.note_refused"
            turn.effects.append(self._say(session, key, reference=event.reference))
            session = self._enter(session, self.flow.start, turn)
        elif isinstance(event, ReportSubmitted):
            session = self._on_submitted(session, event, turn)
        elif isinstance(event, ReportRefused):
            turn.effects.append(self._say(session, event.reason))
            session = self._enter(self._abandon_report(session), "report.cancelled", turn)
        # Crisis resources come first, whatever else this turn says (a welcome back after
        # an idle gap, the warning about an attachment).
        effects = tuple(sorted(turn.effects, key=lambda e: not _is_urgent(e)))
        if any(isinstance(e, ForgetPerson) for e in effects):
            return Outcome(None, effects)
        return Outcome(replace(session, updated_at=now), effects)

    # --- events -------------------------------------------------------------------------
    def _on_text(
        self, session: Session, event: TextReceived, found: Recognition, turn: _Turn
    ) -> Session:
        node = self.flow.node(session.node)
        text = clean_text(event.text).strip()
        if event.attachments:
            turn.effects.append(self._say(session, "attachments.dropped"))
            if not text:
                turn.effects.append(Reply(self.render(session, node)))
                return session
        if not text:
            turn.effects.append(self._say(session, "input.empty"))
            turn.effects.append(Reply(self.render(session, node)))
            return session

        # Later, a clear sentence in another language switches; one word ("ok", "hola") never.
        session = self._follow_language(session, found, _CLEAR_WORDS)
        session = self._note_urgency(session, found.crisis, text)
        if found.crisis:
            # Crisis resources first, from any step. Then the person carries on from where
            # they were; crisis words are never taken as the answer to a report question.
            turn.effects.append(self._crisis_reply(session, with_choices=True))
            if (
                not node.choices
                or node.once
                or node.id in (CRISIS_NODE, FALLBACK_NODE, self.flow.start)
            ):
                # Nothing to carry on with (a confirmation is not said twice, the menu sits
                # behind the crisis screen's Menu button): the crisis screen is where we are.
                return replace(session, node=CRISIS_NODE)
            turn.effects.append(Reply(self.render(session, node)))
            return session

        if event.node is not None and event.node != session.node:
            # Typed into a form from an earlier step: never the answer to this one.
            turn.effects.append(self._say(session, "choice.stale"))
            turn.effects.append(Reply(self.render(session, node)))
            return session
        choice = self._match_choice(session, node, text)
        if choice is not None:
            return self._apply_choice(session, node, choice, turn)
        said = self.content.category_said_in(text) if node.input is None else None
        if said is not None:
            # Only the category's name is kept, never the words: it pre-selects the report's
            # category, which the person can change.
            session = replace(session, vars={**session.vars, "said": said})
        short = len(text.split()) <= _SHORT_WORDS
        if found.intent in REQUIRED_INTENTS and (short or node.input is None):
            session = self._abandon_report(session)
            return self._enter(session, self.flow.intents[found.intent], turn)
        if node.input is not None:
            return self._capture(session, node, text, turn)
        if found.intent is not None and found.intent in self.flow.intents:
            target = self.flow.intents[found.intent]
            if target == "report.start" and session.draft.community is not None:
                return self._enter(session, session.node, turn)
            app = self.content.app_named_in(text)
            if target == "block.platform" and app is not None:
                # "how do I block her on tiktok": straight to that app's walkthrough.
                chosen = self.flow.choices.get(f"app.{app}")
                if chosen is not None and chosen.go is not None:
                    return self._enter(self._apply_set(session, chosen), chosen.go, turn)
            return self._enter(session, target, turn)
        if node.choices and node.id not in ("stop", FALLBACK_NODE):
            spans = self.content.spans(session.locale, "fallback.here")
            line = self.content.spans(session.locale, "fallback.crisis")
            turn.effects.append(Reply(Message((*spans, Span("\n\n"), *line))))
            turn.effects.append(Reply(self.render(session, node)))
            return session
        return self._enter(session, FALLBACK_NODE, turn)

    def _on_choice(self, session: Session, event: ChoiceSelected, turn: _Turn) -> Session:
        node = self.flow.node(session.node)
        if event.node in (None, session.node):
            choice = self._choice_by_id(session, node, event.choice)
            if choice is not None:
                return self._apply_choice(session, node, choice, turn)
        else:
            # A button from an earlier step (or from before a restart that lost the state):
            # harmless navigation still works; anything with a side effect must be fresh.
            old = self.flow.nodes.get(event.node or "")
            static = self.flow.choices.get(event.choice)
            if (
                old is not None
                and static is not None
                and event.choice in old.choices
                and static.do not in _FRESH_ONLY
                and not set(static.set) & {"category", "reveal"}
            ):
                moved = replace(session, node=old.id)
                choice = self._choice_by_id(moved, old, event.choice)
                if choice is not None:
                    return self._apply_choice(moved, old, choice, turn)
        turn.effects.append(self._say(session, "choice.stale"))
        turn.effects.append(Reply(self.render(session, node)))
        return session

    def _on_command(self, session: Session, event: CommandInvoked, turn: _Turn) -> Session:
        target = self.flow.commands.get(event.command)
        if target is None:
            return self._enter(session, FALLBACK_NODE, turn)
        session = self._abandon_report(session)
        if event.command == "report":
            draft = Draft(evidence=(event.evidence,) if event.evidence else ())
            if event.community is not None:
                name = clean_text(event.community.name)
                draft = replace(draft, community=event.community.id, community_name=name)
            session = replace(session, draft=draft)
        if event.community is not None:
            session = self._community_region(session, event.community)
        if target == CRISIS_NODE:
            turn.effects.append(self._crisis_reply(session, with_choices=True))
            return replace(session, node=CRISIS_NODE)
        return self._enter(session, target, turn)

    def _on_communities(self, session: Session, event: CommunitiesListed, turn: _Turn) -> Session:
        node = self.flow.node(session.node)
        if node.pick != "community":
            return session  # stale answer: the person moved on
        if not event.communities:
            start = len(turn.effects)
            session = self._enter(replace(session, offered=()), node.empty or self.flow.start, turn)
            turn.effects[start:] = [_no_community(e) for e in turn.effects[start:]]
            return session
        offered = tuple(replace(c, name=clean_text(c.name)) for c in event.communities[:25])
        session = replace(session, offered=offered)
        turn.effects.append(Reply(self.render(session, node)))
        return session

    def _on_reports(self, session: Session, event: ReportsListed, turn: _Turn) -> Session:
        """The person's own reports: listed, and the open ones offered for a note. Only
        references, communities and statuses are kept (in vars), to render and pick from."""
        node = self.flow.node(session.node)
        if not event.reports:
            return self._enter(session, node.empty or self.flow.start, turn)
        listed = "\n".join(
            f"{r.reference}\t{r.status}\t{int(r.open)}\t{clean_text(r.community_name)}"
            for r in event.reports[:_MAX_LISTED]
        )
        session = replace(session, vars={**session.vars, "mine": listed})
        turn.effects.append(Reply(self.render(session, node)))
        return session

    def _on_submitted(self, session: Session, event: ReportSubmitted, turn: _Turn) -> Session:
        review = next((n for n in self.flow.nodes.values() if n.review), None)
        node = self.flow.node(review.next if review and review.next else self.flow.start)
        community = session.draft.community_name or ""
        if "crisis" in self._urgency(session):
            # Never "wait for the moderators" to someone in crisis: the crisis lines come
            # first (urgent replies are sent first), then the receipt.
            turn.effects.append(self._crisis_reply(session))
        receipt = self.content.spans(
            session.locale, "report.receipt", reference=event.reference, community=community
        )
        session = replace(session, node=node.id, draft=Draft(), offered=(), vars={})
        rest = [generated(s, self.content, session) for s in node.say if s.startswith("@")]
        spans = receipt + tuple(sp for block in rest for sp in (Span("\n\n"), *block))
        choices = self._choices(session, node)
        message = Message(spans, choices, node.id, asks=node.input, reported=event.reference)
        turn.effects.append(Reply(message))
        return session

    # --- choices ------------------------------------------------------------------------
    def ids(self) -> tuple[set[str], set[str]]:
        """Every step id and every choice id this flow and content can put on a screen, for a
        platform to check it can carry them (``Capabilities``). The choices numbered by a
        list's position or named by a report's reference are left out: code makes those."""
        choices = {
            *self.flow.choices,
            *(_region_choice(r) for r in self.content.regions),
            *(_locale_choice(code) for code in self.content.locales),
        }
        return set(self.flow.nodes), choices

    def _choices(self, session: Session, node: Node) -> tuple[Choice, ...]:
        loc = session.locale
        out: list[Choice] = []
        if node.pick == "community":
            out += [Choice(f"community.{i}", c.name) for i, c in enumerate(session.offered)]
        elif node.pick == "report":
            out += [
                Choice(
                    f"report.{ref}",
                    self.content.text(loc, "mine.add_note").replace("{reference}", ref),
                )
                for ref in open_references(session)
            ]
        elif node.pick == "region":
            out += [
                Choice(_region_choice(r.id), self.content.text(loc, r.label))
                for r in self.content.regions.values()
            ]
        elif node.pick == "locale":
            out += [
                Choice(_locale_choice(code), self.content.text(code, "language.name"))
                for code in self.content.locales
            ]
        said = self._preselected(session, node)
        if said is not None:
            node = replace(node, choices=(said, *(c for c in node.choices if c != said)))
        index = int(session.vars.get("step", "0"))
        total = len(self._step_list(session, node)) if node.steps else 0
        for choice_id in node.choices:
            spec = self.flow.choices[choice_id]
            if spec.do == "step_back" and index == 0:
                continue
            label = spec.label
            if spec.do == "step_next" and index >= total - 1:
                label = "choice.done"
            out.append(Choice(choice_id, self.content.text(loc, label)))
        return tuple(out)

    def _preselected(self, session: Session, node: Node) -> str | None:
        """The category choice on this node that matches what the person already said."""
        said = session.vars.get("said")
        if said is None or session.draft.category is not None:
            return None
        for choice_id in node.choices:
            if self.flow.choices[choice_id].set.get("category") == said:
                return choice_id
        return None

    def _choice_by_id(self, session: Session, node: Node, choice_id: str) -> Choice | None:
        for choice in self._choices(session, node):
            if choice.id == choice_id:
                return choice
        return None

    def _match_choice(self, session: Session, node: Node, text: str) -> Choice | None:
        choices = self._choices(session, node)
        number = _NUMBER.match(text)
        if number:
            index = int(number.group(1)) - 1
            return choices[index] if 0 <= index < len(choices) else None
        folded = _fold(text)
        if not folded:
            return None
        for choice in choices:
            if _fold(choice.label) == folded:
                return choice
        return None

    def _apply_choice(self, session: Session, node: Node, choice: Choice, turn: _Turn) -> Session:
        prefix, _, rest = choice.id.partition(".")
        if (
            node.pick
            and prefix in ("community", "region", "locale", "report")
            and choice.id not in (self.flow.choices)
        ):
            return self._apply_pick(session, node, prefix, rest, turn)
        spec: ChoiceDef = self.flow.choices[choice.id]
        session = self._apply_set(session, spec)
        if spec.do == "submit":
            return self._submit(session, turn)
        if spec.do == "forget":
            turn.effects.append(ForgetPerson())
            turn.effects.append(self._say(session, "forget.done"))
            return session
        if spec.do == "cancel_report":
            session = self._abandon_report(session)
        if spec.do in ("step_next", "step_back"):
            index = int(session.vars.get("step", "0")) + (1 if spec.do == "step_next" else -1)
            total = len(self._step_list(session, node))
            if index >= total:
                return self._enter(session, node.next or self.flow.start, turn)
            session = replace(session, vars={**session.vars, "step": str(max(index, 0))})
            turn.effects.append(Reply(self.render(session, node)))
            return session
        if spec.do == "skip":
            return self._enter(session, node.next or self.flow.start, turn)
        return self._enter(session, spec.go or self.flow.start, turn)

    def _apply_pick(
        self, session: Session, node: Node, kind: str, value: str, turn: _Turn
    ) -> Session:
        if kind == "community":
            picked = session.offered[int(value)]
            draft = replace(session.draft, community=picked.id, community_name=picked.name)
            session = self._community_region(replace(session, draft=draft), picked)
        elif kind == "report":
            if value not in open_references(session):
                return self._enter(session, self.flow.start, turn)
            session = replace(session, vars={**session.vars, "note_for": value})
        elif kind == "region":
            session = replace(session, region=value, region_chosen=True)
        else:
            session = replace(session, locale=value, locale_chosen=True)
        return self._enter(session, node.next or self.flow.start, turn)

    def _community_region(self, session: Session, community: Community) -> Session:
        """Asking from a community: its moderators' region, unless the person picked one."""
        if session.region_chosen or community.region not in self.content.regions:
            return session
        return replace(session, region=community.region)

    def _apply_set(self, session: Session, spec: ChoiceDef) -> Session:
        if not spec.set:
            return session
        draft = session.draft
        variables = dict(session.vars)
        for key, value in spec.set.items():
            if key == "category":
                draft = replace(draft, category=value)
            elif key == "reveal":
                draft = replace(draft, reveal=value == "yes")
            else:
                variables[key] = value
        return replace(session, draft=draft, vars=variables)

    # --- report -------------------------------------------------------------------------
    def _capture(self, session: Session, node: Node, text: str, turn: _Turn) -> Session:
        draft = session.draft
        loc = session.locale
        if node.input == "note":
            reference = session.vars.get("note_for")
            if reference is None:
                return self._enter(session, self.flow.start, turn)
            note = text[: self.policy.max_details_chars]
            key = f"note:{reference}:{turn.token}"
            turn.effects.append(AddNote(reference=reference, text=note, key=key))
            variables = {k: v for k, v in session.vars.items() if k != "note_for"}
            return replace(session, vars=variables)
        if node.input == "offender":
            value = text[: self.policy.max_offender_chars]
            draft = replace(draft, offender=value)
        elif node.input == "details":
            if len(text) > self.policy.max_details_chars:
                limit = str(self.policy.max_details_chars)
                turn.effects.append(
                    Reply(Message(self.content.spans(loc, "input.trimmed", limit=limit)))
                )
            draft = replace(draft, details=text[: self.policy.max_details_chars])
        elif node.input == "evidence":
            links = evidence_links(text)
            if not links:
                turn.effects.append(self._say(session, "report.no_links"))
                turn.effects.append(Reply(self.render(session, node)))
                return session
            merged = tuple(dict.fromkeys((*draft.evidence, *links)))[:10]
            draft = replace(draft, evidence=merged)
        return self._enter(replace(session, draft=draft), node.next or self.flow.start, turn)

    def _submit(self, session: Session, turn: _Turn) -> Session:
        draft = session.draft
        if draft.community is None or draft.category is None or draft.reveal is None:
            turn.effects.append(self._say(session, "report.incomplete"))
            return self._enter(self._abandon_report(session), "report.start", turn)
        reference = session.vars.get("reference") or reference_from_token(turn.token)
        turn.effects.append(
            SubmitReport(
                draft=draft,
                reference=reference,
                locale=session.locale,
                urgent=self._urgency(session),
            )
        )
        return session

    def _abandon_report(self, session: Session) -> Session:
        keep = {k: v for k, v in session.vars.items() if k in _KEPT_VARS}
        return replace(session, draft=Draft(), offered=(), vars=keep)

    def _note_urgency(self, session: Session, crisis: bool, text: str) -> Session:
        """Remember (as a flag, never the words) that the person used crisis words or named a
        deadline: a report they send in this conversation is then urgent."""
        marks = {
            f"urgent.{reason}": "1"
            for reason, seen in (("crisis", crisis), ("deadline", self.content.deadline_in(text)))
            if seen and f"urgent.{reason}" not in session.vars
        }
        return replace(session, vars={**session.vars, **marks}) if marks else session

    @staticmethod
    def _urgency(session: Session) -> tuple[str, ...]:
        return tuple(reason for reason in URGENCY if session.vars.get(f"urgent.{reason}"))

    # --- rendering ----------------------------------------------------------------------
    def _enter(self, session: Session, node_id: str, turn: _Turn) -> Session:
        node = self.flow.node(node_id)
        variables = dict(session.vars)
        if node.review and "reference" not in variables:
            variables["reference"] = reference_from_token(turn.token or session.person.key)
        if node.steps:
            variables["step"] = "0"
            if not self._step_list(replace(session, vars=variables), node):
                turn.effects.append(self._say(session, "block.no_steps"))
                return self._enter(session, "block.platform", turn)
        session = replace(session, node=node.id, vars=variables)
        if node.pick == "community":
            if session.draft.community is not None:
                return self._enter(session, node.next or self.flow.start, turn)
            turn.effects.append(ListCommunities())
            return session
        if node.pick == "report":
            turn.effects.append(ListReports())
            return session
        turn.effects.append(Reply(self.render(session, node)))
        return session

    def _step_list(self, session: Session, node: Node) -> tuple[str, ...]:
        key = f"{node.steps}.{session.vars.get('app')}.{session.vars.get('device')}"
        return self.content.steps(session.locale, key) if self.content.has(key) else ()

    def render(self, session: Session, node: Node) -> Message:
        blocks: list[tuple[Span, ...]] = []
        loc = session.locale
        for text_id in node.say:
            if text_id.startswith("@"):
                blocks.append(generated(text_id, self.content, session))
            else:
                blocks.append(self.content.spans(loc, text_id))
        said = self._preselected(session, node)
        if said is not None:
            label = self.content.text(loc, self.flow.choices[said].label)
            blocks.append(self.content.spans(loc, "report.preselected", category=label))
        steps = self._step_list(session, node) if node.steps else ()
        if node.steps and not steps:
            # A conversation stored before a content update removed these steps.
            blocks.append(self.content.spans(loc, "block.no_steps"))
        elif steps:
            index = min(int(session.vars.get("step", "0")), len(steps) - 1)
            header = self.content.spans(
                loc, "steps.header", number=str(index + 1), total=str(len(steps))
            )
            blocks.append((*header, Span("\n"), Span(steps[index])))
            app = self.content.apps.get(session.vars.get("app", ""))
            if app is not None and app.confidence == "unverified" and index == 0:
                blocks.append(self.content.spans(loc, "steps.general_note"))
        spans: list[Span] = []
        for block in blocks:
            if spans and block:
                spans.append(Span("\n\n"))
            spans.extend(block)
        return Message(tuple(spans), self._choices(session, node), node.id, asks=node.input)

    def has_command(self, name: str) -> bool:
        """Whether ``name`` is one of the person's commands (content/flows.toml owns them)."""
        return name in self.flow.commands

    def form(self, node_id: str) -> tuple[str, int] | None:
        """The field a step asks to type and how long it may be, for a platform's form (a
        Discord modal opened from that step's message); None if it asks for nothing typed."""
        node = self.flow.nodes.get(node_id)
        if node is None or node.input is None:
            return None
        return node.input, self.policy.input_limit(node.input)

    def render_current(self, session: Session) -> Message:
        return self.render(session, self.flow.node(session.node))

    def _say(self, session: Session, text_id: str, **values: str) -> Reply:
        return Reply(Message(self.content.spans(session.locale, text_id, **values)))

    def _crisis_reply(self, session: Session, with_choices: bool = False) -> Reply:
        spans = generated("@crisis", self.content, session)
        node = self.flow.nodes[CRISIS_NODE]
        choices = self._choices(session, node) if with_choices else ()
        return Reply(Message(spans, choices, node.id if with_choices else None, urgent=True))

    # --- language ------------------------------------------------------------------------
    def _follow_language(self, session: Session, found: Recognition, words: int) -> Session:
        """Answer in the language the person writes in, once the text holds at least
        ``words`` distinct words of it. A chosen language always sticks."""
        language = found.language
        if (
            session.locale_chosen
            or language is None
            or language == session.locale
            or language not in self.content.locales
            or found.language_words < words
        ):
            return session
        return replace(session, locale=language)

    def _reset(self, session: Session) -> Session:
        return replace(session, node=self.flow.start, draft=Draft(), offered=(), vars={})


def _region_choice(region: str) -> str:
    return f"region.{region}"


def _locale_choice(locale: str) -> str:
    return f"locale.{locale}"
