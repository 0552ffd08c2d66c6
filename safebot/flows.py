"""The conversation graph (``content/flows.toml``): loading and validation.

Validation runs at load and refuses a graph where a target is missing, a node cannot be
reached, or a report could be submitted anywhere but the consent (review) step.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from safebot.content import ContentError, content_root

__all__ = ["ACTIONS", "ChoiceDef", "Flow", "Node", "load_flow", "parse_flow"]

ACTIONS = frozenset({"submit", "forget", "cancel_report", "step_next", "step_back", "skip"})
PICKS = frozenset({"community", "region", "locale", "report"})
SETTABLE = {
    "app": None,  # checked against content/apps.toml
    "device": None,
    "category": frozenset({"threats", "money", "more_images", "other"}),
    "reveal": frozenset({"yes", "no"}),
    "age": frozenset({"under18", "adult"}),  # a range, only where it changes the answer
}
DRAFT_FIELDS = frozenset({"offender", "details", "evidence"})
GENERATED = frozenset(
    {"@crisis", "@resources", "@takedown", "@outside_help", "@review", "@platform_report", "@mine"}
)
INPUTS = DRAFT_FIELDS | {"note"}
"""What an input node may ask for: a report field, or a note to add to one of the person's
open reports."""
# Actions that need a node of a certain kind to make sense.
_ACTION_NEEDS = {"submit": "review", "step_next": "steps", "step_back": "steps", "skip": "input"}


@dataclass(frozen=True, slots=True)
class ChoiceDef:
    id: str
    label: str
    go: str | None = None
    set: Mapping[str, str] = field(default_factory=dict)
    do: str | None = None


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    say: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    input: str | None = None
    pick: str | None = None
    steps: str | None = None
    review: bool = False
    next: str | None = None
    empty: str | None = None  # pick nodes: where to go when there is nothing to pick
    once: bool = False  # a confirmation ("Saved."): said once, never repeated after a crisis

    @property
    def kind(self) -> str:
        if self.review:
            return "review"
        if self.input:
            return "input"
        if self.pick:
            return "pick"
        if self.steps:
            return "steps"
        return "plain"


CRISIS_NODE = "crisis"
"""The node the engine goes to whenever crisis language is seen, from anywhere."""
FALLBACK_NODE = "fallback"
"""The node for a message nothing understood (it carries the short crisis line)."""
REQUIRED_NODES = (CRISIS_NODE, FALLBACK_NODE)
"""Node ids the engine itself refers to: a flow without them does not load."""
REQUIRED_INTENTS = ("menu", "stop")
"""Intents the engine sends somewhere even in the middle of a form: each needs a target."""


@dataclass(frozen=True, slots=True)
class Flow:
    start: str
    nodes: Mapping[str, Node]
    choices: Mapping[str, ChoiceDef]
    intents: Mapping[str, str]
    commands: Mapping[str, str]

    def node(self, node_id: str) -> Node:
        """The node ``node_id``, or the start node for an id the flow no longer has (a
        conversation saved before the content changed)."""
        return self.nodes.get(node_id) or self.nodes[self.start]

    def message_ids(self) -> set[str]:
        ids = {c.label for c in self.choices.values()}
        for node in self.nodes.values():
            ids.update(s for s in node.say if not s.startswith("@"))
        return ids


def load_flow(root: Traversable | Path | None = None) -> Flow:
    root = root if root is not None else content_root()
    with root.joinpath("flows.toml").open("rb") as fh:
        return parse_flow(tomllib.load(fh))


def parse_flow(raw: Mapping[str, Any]) -> Flow:
    nodes = {
        nid: Node(
            id=nid,
            say=tuple(spec.get("say", ())),
            choices=tuple(spec.get("choices", ())),
            input=spec.get("input"),
            pick=spec.get("pick"),
            steps=spec.get("steps"),
            review=bool(spec.get("review", False)),
            next=spec.get("next"),
            empty=spec.get("empty"),
            once=bool(spec.get("once", False)),
        )
        for nid, spec in raw.get("nodes", {}).items()
    }
    choices = {
        cid: ChoiceDef(
            id=cid,
            label=str(spec.get("label", "")),
            go=spec.get("go"),
            set={str(k): str(v) for k, v in spec.get("set", {}).items()},
            do=spec.get("do"),
        )
        for cid, spec in raw.get("choices", {}).items()
    }
    flow = Flow(
        start=str(raw.get("start", "")),
        nodes=nodes,
        choices=choices,
        intents=dict(raw.get("intents", {})),
        commands=dict(raw.get("commands", {})),
    )
    problems = validate(flow)
    if problems:
        raise ContentError(problems)
    return flow


def validate(flow: Flow) -> list[str]:
    problems: list[str] = []
    nodes = flow.nodes

    def target(where: str, node_id: str | None) -> None:
        if node_id is not None and node_id not in nodes:
            problems.append(f"{where}: target {node_id!r} does not exist")

    target("start", flow.start or None)
    if not flow.start:
        problems.append("start: missing")
    for node_id in REQUIRED_NODES:
        if node_id not in nodes:
            problems.append(f"node {node_id!r} is required: the engine goes there")
    for intent in REQUIRED_INTENTS:
        if intent not in flow.intents:
            problems.append(f"intent {intent!r} is required: the engine sends it somewhere")
    for name, node_id in [*flow.intents.items(), *flow.commands.items()]:
        target(f"intent/command {name}", node_id)
    for choice in flow.choices.values():
        where = f"choice {choice.id}"
        target(where, choice.go)
        if not choice.label:
            problems.append(f"{where}: no label")
        if choice.do is not None and choice.do not in ACTIONS:
            problems.append(f"{where}: unknown action {choice.do!r}")
        if choice.go is None and choice.do is None:
            problems.append(f"{where}: goes nowhere and does nothing")
        for key, value in choice.set.items():
            allowed = SETTABLE.get(key, frozenset())
            if key not in SETTABLE:
                problems.append(f"{where}: cannot set {key!r}")
            elif allowed is not None and value not in allowed:
                problems.append(f"{where}: {key}={value!r} is not allowed")
    for node in nodes.values():
        where = f"node {node.id}"
        kinds = [k for k in (node.input, node.pick, node.steps, node.review or None) if k]
        if len(kinds) > 1:
            problems.append(f"{where}: a node has at most one kind")
        if node.input is not None and node.input not in INPUTS:
            problems.append(f"{where}: unknown input field {node.input!r}")
        if node.pick is not None and node.pick not in PICKS:
            problems.append(f"{where}: unknown pick {node.pick!r}")
        if node.kind in {"input", "pick", "steps", "review"}:
            if node.next is None:
                problems.append(f"{where}: a {node.kind} node needs `next`")
            target(where, node.next)
        if node.pick in ("community", "report") and node.empty is None:
            problems.append(f"{where}: a {node.pick} pick needs `empty`")
        target(where, node.empty)
        for text in node.say:
            if text.startswith("@") and text not in GENERATED:
                problems.append(f"{where}: unknown generated text {text!r}")
        for choice_id in node.choices:
            spec = flow.choices.get(choice_id)
            if spec is None:
                problems.append(f"{where}: choice {choice_id!r} does not exist")
                continue
            needs = _ACTION_NEEDS.get(spec.do or "")
            if needs and node.kind != needs:
                problems.append(f"{where}: action {spec.do!r} only belongs on a {needs} node")
    problems.extend(_consent_problems(flow))
    reachable = _reachable(flow)
    for node_id in nodes.keys() - reachable:
        problems.append(f"node {node_id}: cannot be reached")
    return problems


def _successors(flow: Flow, node: Node) -> Iterable[str]:
    if node.next:
        yield node.next
    if node.empty:
        yield node.empty
    for choice_id in node.choices:
        choice = flow.choices.get(choice_id)
        if choice and choice.go:
            yield choice.go


def _reachable(flow: Flow) -> set[str]:
    seen: set[str] = set()
    todo = [flow.start, *flow.intents.values(), *flow.commands.values(), FALLBACK_NODE]
    while todo:
        node_id = todo.pop()
        if node_id in seen or node_id not in flow.nodes:
            continue
        seen.add(node_id)
        todo.extend(_successors(flow, flow.nodes[node_id]))
    return seen


def _consent_problems(flow: Flow) -> list[str]:
    """A report can only be submitted from a review node, and every review node can only be
    entered after a community pick (so the review always names who will see the report)."""
    problems: list[str] = []
    review_nodes = {n.id for n in flow.nodes.values() if n.review}
    if not review_nodes:
        problems.append("consent: no review (consent) node")
    # Walk the graph from every entry point without passing a community pick: reaching a
    # review node that way means a report could skip choosing who receives it.
    entries = [flow.start, *flow.intents.values(), *flow.commands.values(), FALLBACK_NODE]
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        node_id = todo.pop()
        if node_id in seen or node_id not in flow.nodes:
            continue
        seen.add(node_id)
        node = flow.nodes[node_id]
        if node.review:
            problems.append(f"consent: {node_id} can be reached without choosing a community")
            continue
        if node.pick == "community":
            continue
        todo.extend(_successors(flow, node))
    return problems
