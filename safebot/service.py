"""The thin service layer: runs the pure engine and carries out its effects through the ports.

One ``SafeBot`` per process. Adapters call ``handle(event)`` and send the returned messages
privately (DM or ephemeral reply); they call ``moderator_action`` for moderator buttons and
commands, and run ``run_background`` for outbox delivery and retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from safebot.content import Content
from safebot.conversation import (
    AddNote,
    Engine,
    ForgetPerson,
    ListCommunities,
    ListReports,
    Policy,
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
from safebot.evidence import EvidencePack, evidence_pack
from safebot.flows import Flow, load_flow
from safebot.limits import SlidingWindow
from safebot.messages import Message, Span, clean_text, fit
from safebot.model import (
    REMOVE_NAME,
    AuditEntry,
    CaseNote,
    Community,
    CommunityConfig,
    CommunityId,
    OutboxItem,
    OutboxKind,
    PersonId,
    Report,
    ReportStatus,
    Session,
)
from safebot.moderation import Action, apply_action, build_alert, status_message
from safebot.ops.metrics import Metrics
from safebot.ports import DeliveryError, MembershipCheck, PlatformPort
from safebot.pseudonym import pseudonym
from safebot.recognise import Recogniser
from safebot.settings import Settings, SettingsError
from safebot.store.base import DuplicateReference, Store, VersionConflict

__all__ = ["ModeratorReply", "SafeBot", "build_engine"]

_MY_REPORTS = 10
"""Reports "my reports" lists at most (the newest)."""

log = logging.getLogger(__name__)
_DAY = 86400.0

Deliver = Callable[[tuple[Message, ...]], Awaitable[None]]


def build_engine(
    settings: Settings, content: Content | None = None, flow: Flow | None = None
) -> Engine:
    content = content or Content.load()
    flow = flow or load_flow()
    recogniser = Recogniser.from_dir(content.root, content.locales)
    if settings.default_region and settings.default_region not in content.regions:
        known = ", ".join(sorted(content.regions))
        raise SettingsError([f"default_region {settings.default_region!r} is not one of {known}"])
    policy = Policy(
        idle_timeout=settings.idle_timeout_minutes * 60.0,
        retention_days=settings.retention_days,
        default_region=settings.default_region,
    )
    return Engine(flow, content, recogniser, policy)


@dataclass(frozen=True, slots=True)
class ModeratorReply:
    """The answer shown to the moderator who acted (in the community's locale)."""

    ok: bool
    message: Message
    report: Report | None


async def export_evidence(
    store: Store,
    content: Content,
    settings: Settings,
    community: CommunityId | None,
    reference: str,
    actor: str,
    now: float,
) -> EvidencePack | None:
    """The evidence pack for a report of ``community`` (None: any community, for the
    operator's command line), audited; None when there is no such report there."""
    reference = reference.strip().upper()
    report = await store.get_report(reference)
    if report is None or (community is not None and report.community != community):
        return None
    config = await store.get_community(report.community)
    locale = config.locale if config else content.default_locale
    region = (config.region if config else "") or settings.default_region
    audit = await store.audit_log(reference)
    notes = await store.case_notes(reference)
    pack = evidence_pack(content, report, audit, notes, region, locale)
    await store.audit(AuditEntry(now, clean_text(actor), "export", reference, report.community))
    return pack


class SafeBot:
    def __init__(
        self,
        *,
        engine: Engine,
        store: Store,
        port: PlatformPort,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        tokens: Callable[[], str] = lambda: secrets.token_hex(8),
        session_cache_size: int = 5000,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.content = engine.content
        self.store = store
        self.port = port
        self.settings = settings
        self.clock = clock
        self.tokens = tokens
        self.metrics = metrics or Metrics()  # counters for /metrics (safebot/ops/)
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # per person, refcounted
        # Recently active conversations, so a message costs one write and no read. The stored
        # version guards it: a stale entry shows up as a VersionConflict and is reloaded.
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self.session_cache_size = session_cache_size
        self._outbox_wake = asyncio.Event()
        limits = settings.limits
        self._message_limit = SlidingWindow(limits.messages_per_minute, 60.0)
        self._told_to_slow_down = SlidingWindow(1, 60.0)
        self._secret: str | None = None  # the store's pseudonym secret, read once

    async def pseudonym(self, person: PersonId) -> str:
        """The person's pseudonym: what limits and blocks are kept on (see safebot.pseudonym)."""
        if self._secret is None:
            self._secret = await self.store.pseudonym_secret()
        return pseudonym(self._secret, person)

    # --- people ---------------------------------------------------------------------------
    async def handle(
        self, event: Event, *, before_save: Deliver | None = None
    ) -> tuple[Message, ...]:
        """Process one inbound event for one person; returns the private replies, in order.

        ``before_save``, if given, is awaited with the replies before the new conversation
        state is saved: an adapter that sends them there (idempotently) never leaves a saved
        state whose screen the person did not get, even if the process dies in between."""
        key = event.person.key
        typed = isinstance(event, TextReceived | ChoiceSelected | CommandInvoked)
        if typed and await self._flooding(event.person):
            # Too many messages. One kind word per minute; the rest get no answer (answering
            # would amplify the flood).
            if self._told_to_slow_down.hit(key, self.clock()):
                return (self._slow_down(key),)
            return ()
        self.metrics.message_handled()
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                return await self._handle_locked(event, before_save)
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def _flooding(self, person: PersonId) -> bool:
        """Over the per-minute message limit? This process's own count comes first and costs
        no database work, so a flood cannot slow anyone else down; the store's count makes
        the limit hold across processes sharing the database. The store only ever sees the
        pseudonym, so forgetting neither resets the count nor leaves the id in it."""
        now, limit = self.clock(), self.settings.limits.messages_per_minute
        if not self._message_limit.hit(person.key, now):
            return True
        tag = await self.pseudonym(person)
        return await self.store.count_hit(f"messages:{tag}", 60.0, now) > limit

    def _known_locale(self, key: str, locale_hint: str | None = None) -> str:
        """The language the person was last answered in, else their client's, else the
        default (no store read: for answers given without a conversation step)."""
        cached = self._sessions.get(key)
        locale = cached.locale if cached else self.content.locale_for_hint(locale_hint)
        return locale or self.content.default_locale

    def _slow_down(self, key: str) -> Message:
        return Message(self.content.spans(self._known_locale(key), "limits.slow_down"))

    def sorry(self, person: PersonId, locale_hint: str | None = None) -> Message:
        """What an adapter says when handling a message failed, in the person's language."""
        return Message(
            self.content.spans(self._known_locale(person.key, locale_hint), "error.sorry")
        )

    async def _handle_locked(
        self, event: Event, before_save: Deliver | None
    ) -> tuple[Message, ...]:
        person = event.person
        session = self._cached(person.key) or await self.store.load_session(person)
        for _attempt in range(3):
            replies, session_after, acted = await self._run(event, session)
            replies = tuple(part for reply in replies for part in self._fit(reply))
            if before_save is not None:
                await before_save(replies)
            if session_after is None:
                await self.store.delete_session(person)
                self._sessions.pop(person.key, None)
                return replies
            try:
                saved = await self.store.save_session(session_after)
            except VersionConflict:
                # Someone else (another process) moved this conversation on since we read
                # it. Redo the step on the fresh state, unless it already stored a report or
                # forgot the person: those must not happen twice, so this event's state wins.
                self._sessions.pop(person.key, None)
                stored = await self.store.load_session(person)
                if not acted:
                    session = stored
                    continue
                log.info("session version conflict after a side effect; newest state kept")
                version = stored.version if stored else 0
                saved = await self.store.save_session(replace(session_after, version=version))
            self._remember(saved)
            return replies
        raise RuntimeError("conversation kept changing under us")  # pragma: no cover

    async def _run(
        self, event: Event, session: Session | None
    ) -> tuple[tuple[Message, ...], Session | None, bool]:
        """Step the engine through one event and the events its effects produce. Returns the
        replies, the new session (None: forget it) and whether a side effect was carried out."""
        person = event.person
        replies: list[Message] = []
        pending: list[Event] = [event]
        acted = False
        while pending:
            current = pending.pop(0)
            outcome = self.engine.step(session, current, self.clock(), self.tokens())
            for effect in outcome.effects:
                if isinstance(effect, Reply):
                    replies.append(effect.message)
                elif isinstance(effect, ListCommunities):
                    pending.append(CommunitiesListed(person, await self.reportable(person)))
                elif isinstance(effect, ListReports):
                    pending.append(ReportsListed(person, await self._my_reports(person)))
                elif isinstance(effect, AddNote):
                    pending.append(await self._add_note(person, effect))
                    acted = True
                elif isinstance(effect, SubmitReport):
                    pending.append(await self._submit(person, effect))
                    acted = True
                elif isinstance(effect, ForgetPerson):
                    # Also queues the edits that take the person's name off posted alerts.
                    await self.store.forget_person(person, self.clock())
                    await self.store.audit(AuditEntry(self.clock(), "person", "forget"))
                    self._outbox_wake.set()
                    acted = True
            session = outcome.session
        return tuple(replies), session, acted

    def _fit(self, message: Message) -> tuple[Message, ...]:
        """``message`` in as many parts as the platform needs (its longest message)."""
        capabilities = self.port.capabilities
        return fit(message, capabilities.max_length, capabilities.measure)

    def _cached(self, key: str) -> Session | None:
        session = self._sessions.get(key)
        if session is not None:
            self._sessions.move_to_end(key)
        return session

    def _remember(self, session: Session) -> None:
        self._sessions[session.person.key] = session
        self._sessions.move_to_end(session.person.key)
        while len(self._sessions) > self.session_cache_size:
            self._sessions.popitem(last=False)

    async def reportable(self, person: PersonId) -> tuple[Community, ...]:
        """Communities the person shares with the bot, that have moderators set up and that
        have not blocked the person from reporting."""
        shared = await self.port.shared_communities(person)
        tag = await self.pseudonym(person)
        out: list[Community] = []
        for community in shared:
            config = await self.store.get_community(community.id)
            if config is not None and tag not in config.blocked:
                out.append(community)
        return tuple(out)

    async def _may_report(self, person: PersonId, community: CommunityId) -> bool:
        """The check at submit: set up, not blocked, and a member now. A platform that can
        check one community asks only about this one (see MembershipCheck)."""
        config = await self.store.get_community(community)
        if config is None or await self.pseudonym(person) in config.blocked:
            return False
        if isinstance(self.port, MembershipCheck):
            return await self.port.is_member(person, community)
        return community in {c.id for c in await self.port.shared_communities(person)}

    async def _submit(self, person: PersonId, effect: SubmitReport) -> Event:
        draft = effect.draft
        assert draft.community is not None and draft.category is not None
        if not await self._may_report(person, draft.community):
            return ReportRefused(person, "report.not_allowed")
        now = self.clock()
        tag = await self.pseudonym(person)
        recent = await self.store.reports_since(tag, now - 3600.0)
        if recent >= self.settings.limits.reports_per_hour:
            existing = await self.store.get_report(effect.reference)
            if existing is None or existing.reporter_tag != tag:  # (a repeat is not new)
                return ReportRefused(person, "limits.reports")
        reference = effect.reference
        for attempt in range(8):
            report = Report(
                reference=reference,
                community=draft.community,
                community_name=draft.community_name or "",
                reporter=person,
                reveal=bool(draft.reveal),
                category=draft.category,
                offender=draft.offender,
                details=draft.details,
                evidence=draft.evidence,
                locale=effect.locale,
                status=ReportStatus.NEW,
                created_at=now,
                updated_at=now,
                reporter_tag=tag,
                urgent=effect.urgent,
            )
            alert = OutboxItem(
                key=f"alert:{reference}",
                kind=OutboxKind.ALERT,
                reference=reference,
                community=draft.community,
                created_at=now,
                next_try=now,
            )
            try:
                await self.store.add_report(report, [alert, *self._escalations(report, now)])
            except DuplicateReference:
                existing = await self.store.get_report(reference)
                if existing is not None and existing.reporter_tag == tag:
                    break  # the same confirmation, repeated after a crash: already stored
                # Taken by someone else's report. The next candidate is derived, not random:
                # a Confirm repeated after a crash walks the same candidates and finds the
                # report it already stored instead of filing a second one. It is derived from
                # the first reference only: a reference must never say who sent it.
                seed = f"{effect.reference} {attempt}"
                reference = reference_from_token(seed, length=4 + attempt // 2)
                continue
            await self.store.audit(
                AuditEntry(now, "reporter", "report", reference, draft.community)
            )
            log.info("report %s stored for %s", reference, draft.community.key)
            self.metrics.report_filed()
            break
        else:  # pragma: no cover - eight collisions in a row
            return ReportRefused(person, "report.failed")
        self._outbox_wake.set()
        return ReportSubmitted(person, reference)

    # --- moderators -----------------------------------------------------------------------
    async def _report_of(
        self, community: CommunityId, reference: str
    ) -> tuple[str, str, Report | None]:
        """The community's language, the normalized reference and the report if it is one of
        that community's (None otherwise: moderators act only on their own reports)."""
        config = await self.store.get_community(community)
        locale = config.locale if config else self.content.default_locale
        reference = reference.strip().upper()
        report = await self.store.get_report(reference)
        return locale, reference, report if report and report.community == community else None

    async def moderator_action(
        self, community: CommunityId, reference: str, action: str, moderator: str
    ) -> ModeratorReply:
        """A moderator of ``community`` acts on a report: ack, claim, resolve, or block and
        unblock its sender. The adapter has already checked that the person is a moderator
        there; this checks the report belongs to that community."""
        if action in ("block", "unblock"):
            return await self.block_reporter(
                community, reference, moderator, block=action == "block"
            )
        locale, reference, report = await self._report_of(community, reference)
        if report is None:
            return self._mod_reply(False, locale, "mod.unknown", reference, None)
        try:
            kind = Action(action)
        except ValueError:
            return self._mod_reply(False, locale, "mod.unknown_action", reference, report)
        result = apply_action(report, kind, moderator, self.clock())
        if not result.ok:
            return self._mod_reply(False, locale, result.reason or "mod.unknown", reference, report)
        try:
            await self.store.update_report(result.report, result.outbox, result.audit)
        except KeyError:  # purged by retention while the moderator was acting
            return self._mod_reply(False, locale, "mod.unknown", reference, None)
        self._outbox_wake.set()
        log.info("report %s: %s", reference, kind.value)
        return self._mod_reply(True, locale, f"mod.done.{kind.value}", reference, result.report)

    async def add_case_note(
        self, community: CommunityId, reference: str, moderator: str, text: str
    ) -> ModeratorReply:
        """A moderator of ``community`` keeps a note with one of its reports (audited). The
        adapter has checked that they are a moderator there; this checks the report."""
        locale, reference, report = await self._report_of(community, reference)
        if report is None:
            return self._mod_reply(False, locale, "mod.unknown", reference, None)
        words = clean_text(text).strip()[: self.engine.policy.max_details_chars]
        if not any(ch.isalnum() for ch in words):
            return self._mod_reply(False, locale, "mod.note_empty", reference, report)
        now = self.clock()
        note = CaseNote(reference, now, clean_text(moderator), words)
        try:
            await self.store.add_case_note(
                note, AuditEntry(now, note.author, "case_note", reference, community)
            )
        except KeyError:  # purged by retention meanwhile
            return self._mod_reply(False, locale, "mod.unknown", reference, None)
        return self._mod_reply(True, locale, "mod.note_kept", reference, report)

    async def evidence(
        self, community: CommunityId | None, reference: str, actor: str
    ) -> EvidencePack | None:
        """The evidence pack for a report of ``community``, audited (see export_evidence)."""
        return await export_evidence(
            self.store, self.content, self.settings, community, reference, actor, self.clock()
        )

    def _mod_reply(
        self, ok: bool, locale: str, key: str, reference: str, report: Report | None
    ) -> ModeratorReply:
        spans = self.content.spans(locale, key, reference=reference)
        return ModeratorReply(ok, Message(spans), report)

    async def block_reporter(
        self, community: CommunityId, reference: str, moderator: str, *, block: bool = True
    ) -> ModeratorReply:
        """Stop (or allow again) the person who sent ``reference`` from reporting to this
        community. Works for anonymous reports without revealing who sent them."""
        config = await self.store.get_community(community)
        locale = config.locale if config else self.content.default_locale
        reference = reference.strip().upper()
        report = await self.store.get_report(reference)
        if config is None or report is None or report.community != community:
            return self._mod_reply(False, locale, "mod.unknown", reference, None)
        if report.reporter_tag is None:  # forgotten before pseudonyms existed
            return self._mod_reply(False, locale, "mod.block.forgotten", reference, report)
        key = report.reporter_tag
        blocked = tuple(k for k in config.blocked if k != key) + ((key,) if block else ())
        await self.store.put_community(replace(config, blocked=blocked, updated_at=self.clock()))
        action = "block-reporter" if block else "unblock-reporter"
        await self.store.audit(AuditEntry(self.clock(), moderator, action, reference, community))
        done = "mod.block.done" if block else "mod.block.undone"
        return self._mod_reply(True, locale, done, reference, report)

    async def configure_community(self, config: CommunityConfig, actor: str) -> None:
        await self.store.put_community(replace(config, updated_at=self.clock()))
        await self.store.audit(AuditEntry(self.clock(), actor, "configure", None, config.community))
        self._outbox_wake.set()

    async def set_up_community(
        self,
        community: CommunityId,
        *,
        name: str,
        destination: str,
        actor: str,
        locale: str,
        **changes: str | None,
    ) -> CommunityConfig:
        """Link a community to its moderator destination (setup, link), keeping every setting
        this call does not change (``changes`` that are None keep theirs; ``locale`` is used
        only for a new community). Audited."""
        existing = await self.store.get_community(community)
        base = existing or CommunityConfig(community, name, destination, locale=locale)
        kept = {key: value for key, value in changes.items() if value is not None}
        config = replace(base, name=name, destination=destination, **kept)  # type: ignore[arg-type]
        await self.configure_community(config, actor)
        return config

    async def unlink_community(self, community: CommunityId, actor: str) -> None:
        """Stop sending a community's reports anywhere (its reports are kept); audited."""
        await self.store.delete_community(community)
        await self.store.audit(AuditEntry(self.clock(), actor, "unlink", None, community))

    async def _my_reports(self, person: PersonId) -> tuple[ReportSummary, ...]:
        reports = await self.store.reports_of(person, _MY_REPORTS)
        return tuple(
            ReportSummary(
                r.reference, r.community_name, r.status.value, r.status is not ReportStatus.RESOLVED
            )
            for r in reports
        )

    async def _add_note(self, person: PersonId, effect: AddNote) -> NoteAdded:
        """Queue the person's note under their own open report (refused otherwise)."""
        report = await self.store.get_report(effect.reference)
        if report is None or report.reporter != person or report.status is ReportStatus.RESOLVED:
            return NoteAdded(person, effect.reference, ok=False)
        now = self.clock()
        item = OutboxItem(
            key=effect.key,
            kind=OutboxKind.NOTE,
            reference=report.reference,
            community=report.community,
            payload={"text": effect.text},
            created_at=now,
            next_try=now,
        )
        await self.store.enqueue([item])
        await self.store.audit(
            AuditEntry(now, "reporter", "note", report.reference, report.community)
        )
        self._outbox_wake.set()
        return NoteAdded(person, report.reference, ok=True)

    async def record(
        self, actor: str, action: str, reference: str | None, community: CommunityId
    ) -> None:
        """Audit something an adapter did on a moderator's request (e.g. a report to the
        homeserver's admins)."""
        await self.store.audit(
            AuditEntry(self.clock(), clean_text(actor), action, reference, community)
        )

    async def backlog_status(self, config: CommunityConfig, locale: str | None = None) -> Message:
        """For the moderators' status command: alerts still to deliver, alerts given up on,
        and reports nobody has acknowledged."""
        backlog = await self.store.backlog(config.community)
        return Message(
            self.content.spans(
                locale or config.locale,
                "mod.status_backlog",
                community=config.name,
                waiting=str(backlog.waiting),
                parked=str(backlog.parked),
                unacknowledged=str(await self.unacknowledged(config.community)),
            )
        )

    async def unacknowledged(self, community: CommunityId) -> int:
        """How many of the community's reports no moderator has acknowledged yet."""
        return await self.store.count_reports(community, ReportStatus.NEW)

    # --- outbox ---------------------------------------------------------------------------
    async def deliver_due(self) -> int:
        """One pass over due outbox items; returns how many were delivered."""
        opts = self.settings.outbox
        items = await self.store.claim_due(self.clock(), opts.batch, opts.lease)
        delivered = 0
        for item in items:
            try:
                sent, posted = await self._deliver(item)
            except Exception as exc:
                await self._failed(item, exc)
                continue
            await self.store.mark_delivered(item.key, self.clock(), posted)
            if item.kind is not OutboxKind.ESCALATION:  # reminders wait on purpose
                self.metrics.delivered_after(item.kind.value, self.clock() - item.created_at)
            delivered += sent
        return delivered

    def _escalations(self, report: Report, now: float) -> list[OutboxItem]:
        """The reminders queued with a new report: each one is posted only if nobody has
        acknowledged the report by then (sooner for an urgent one)."""
        opts = self.settings.escalation
        first = opts.urgent_after_minutes if report.urgent else opts.after_minutes
        if first <= 0:
            return []
        due = (now + first * 60.0, now + (first + opts.again_minutes) * 60.0)
        return [
            OutboxItem(
                key=f"escalate:{report.reference}:{level}",
                kind=OutboxKind.ESCALATION,
                reference=report.reference,
                community=report.community,
                payload={"level": str(level)},
                created_at=now,
                next_try=at,
            )
            for level, at in enumerate(due, start=1)
        ]

    async def _deliver(self, item: OutboxItem) -> tuple[bool, str | None]:
        """Deliver one item. Returns whether something was sent (False: nothing to send, it
        is done all the same) and, for an alert, where the platform posted it."""
        report = await self.store.get_report(item.reference)
        if report is None:
            return False, None  # purged: nothing left to deliver
        if item.kind is OutboxKind.STATUS:
            if report.reporter is None:
                return False, None  # the person asked to be forgotten
            status = ReportStatus(item.payload.get("status", report.status.value))
            message = status_message(self.content, report.evolve(status=status))
            for part, key in self._parts(message, item.key):
                await self.port.send_private(report.reporter, part, key)
            return True, None
        if item.kind is OutboxKind.ESCALATION and report.status is not ReportStatus.NEW:
            return False, None  # a moderator has it: no reminder
        config = await self.store.get_community(report.community)
        if config is None:
            raise DeliveryError("no moderator destination is configured")
        alert = build_alert(self.content, report, f"alert:{report.reference}", config.locale)
        if item.payload.get("reason") == REMOVE_NAME:
            alert = replace(alert, remove_name=True)
        if item.kind is OutboxKind.ALERT:
            return True, await self.port.send_alert(config, alert)
        original = await self.store.get_outbox_item(alert.key)
        alert = replace(alert, posted=original.posted if original is not None else None)
        if item.kind is OutboxKind.NOTE:
            label = self.content.spans(config.locale, "alert.note", reference=report.reference)
            note = Message((*label, Span("\n"), Span(item.payload.get("text", ""), untrusted=True)))
            for part, key in self._parts(note, item.key):
                await self.port.reply_to_alert(config, alert, part, key, ping=False)
        elif item.kind is OutboxKind.ESCALATION:
            waited = max(1, round((self.clock() - report.created_at) / 60.0))
            reminder = Message(
                self.content.spans(
                    config.locale, "alert.reminder", reference=report.reference, minutes=str(waited)
                )
            )
            last = item.payload.get("level") == "2"
            await self.port.reply_to_alert(
                config, alert, reminder, item.key, ping=True, escalate=last
            )
            await self.store.audit(
                AuditEntry(self.clock(), "safebot", "escalate", report.reference, config.community)
            )
            self.metrics.escalated()
        else:
            moved = await self.port.update_alert(config, alert, item.key)
            if moved is not None and original is not None and moved != original.posted:
                # Posted anew: later updates and replies go under the new copy, also after
                # a restart (the old one may be gone).
                delivered = original.delivered_at or self.clock()
                await self.store.mark_delivered(alert.key, delivered, moved)
        return True, None

    def _parts(self, message: Message, key: str) -> list[tuple[Message, str]]:
        """The parts of an outbox message, each with its own idempotency key (the first keeps
        the item's, so a message that needs no cutting is sent as it always was)."""
        parts = self._fit(message)
        return [(part, key if i == 0 else f"{key}#{i}") for i, part in enumerate(parts)]

    async def _failed(self, item: OutboxItem, exc: Exception) -> None:
        opts = self.settings.outbox
        attempts = item.attempts + 1
        reason = exc.reason if isinstance(exc, DeliveryError) else type(exc).__name__
        permanent = isinstance(exc, DeliveryError) and exc.permanent
        if permanent or attempts >= opts.max_attempts:
            await self.store.mark_parked(item.key, attempts, reason)
            self.metrics.error("delivery_parked")
            log.error("outbox %s parked after %d tries: %s", item.key, attempts, reason)
            return
        delay = min(opts.max_delay, opts.base_delay * 2 ** (attempts - 1))
        delay *= random.uniform(0.5, 1.0)  # jitter: retries of many items don't line up
        await self.store.mark_retry(item.key, attempts, self.clock() + delay, reason)
        self.metrics.error("delivery_retry")
        log.warning(
            "outbox %s try %d failed (%s); next in %.1fs", item.key, attempts, reason, delay
        )

    async def run_outbox(self, stop: asyncio.Event, idle: float = 1.0) -> None:
        """Deliver until ``stop`` is set. Wakes on new items; polls every ``idle`` seconds."""
        while not stop.is_set():
            self._outbox_wake.clear()
            try:
                await self.deliver_due()
            except Exception:
                log.exception("outbox pass failed")
                self.metrics.error("outbox_pass")
            waiter = asyncio.ensure_future(self._outbox_wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, timeout=idle, return_when="FIRST_COMPLETED")
            waiter.cancel()
            stopper.cancel()

    async def purge_expired(self) -> int:
        """Delete reports past retention, conversations (drafts included) idle for longer
        than ``session_expiry_hours``, and ended rate counter windows. Returns the number of
        reports deleted."""
        now = self.clock()
        count = await self.store.purge_reports(now - self.settings.retention_days * _DAY)
        if count:
            log.info("purged %d reports past retention", count)
        idle_cutoff = now - self.settings.session_expiry_hours * 3600.0
        for key in [k for k, s in self._sessions.items() if s.updated_at < idle_cutoff]:
            del self._sessions[key]
        sessions = await self.store.purge_sessions(idle_cutoff, now)
        if sessions:
            log.info("purged %d idle conversations", sessions)
        members = await self.store.purge_memberships(now - self.settings.membership_days * _DAY)
        if members:
            log.info("purged %d learned memberships", members)
        return count

    async def run_background(self, stop: asyncio.Event) -> None:
        """Outbox delivery plus an hourly retention purge, until ``stop`` is set."""

        async def purge_loop() -> None:
            while not stop.is_set():
                try:
                    await self.purge_expired()
                except Exception:
                    log.exception("retention purge failed")
                    self.metrics.error("retention_purge")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=3600)

        await asyncio.gather(self.run_outbox(stop), purge_loop())
