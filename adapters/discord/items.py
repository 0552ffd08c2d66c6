"""Persistent components. All state lives in the custom_id, so buttons keep working after a
restart (discord.py DynamicItem, registered in setup_hook)."""

from __future__ import annotations

import re
from typing import Any, Protocol, cast

import discord

from safebot.adapters.discord.render import MAX_BUTTONS, label
from safebot.messages import Choice

__all__ = [
    "DYNAMIC_ITEMS",
    "CaseNoteModal",
    "ChoiceButton",
    "ChoiceSelect",
    "ItemHandler",
    "ModActionButton",
    "ModButton",
    "TextModal",
    "WriteButton",
    "choices_view",
]


class ItemHandler(Protocol):
    """What the buttons, menus and forms call when someone uses them (the adapter). A
    Protocol, so this module does not import the adapter that imports it."""

    async def on_choice(
        self, interaction: discord.Interaction[Any], node: str, choice: str
    ) -> None: ...

    async def open_modal(self, interaction: discord.Interaction[Any], node_id: str) -> None: ...

    async def on_modal(
        self, interaction: discord.Interaction[Any], node: str, value: str
    ) -> None: ...

    async def on_mod_button(
        self, interaction: discord.Interaction[Any], action: str, reference: str
    ) -> None: ...

    async def on_member_action(
        self, interaction: discord.Interaction[Any], action: str, reference: str, user_id: int
    ) -> None: ...

    async def on_case_note(
        self, interaction: discord.Interaction[Any], reference: str, text: str
    ) -> None: ...


# What a step id and a choice id may be to fit a custom id (at most 100 characters).
STEP_ID = r"[a-z0-9_.]{1,40}"
CHOICE_ID = r"[A-Za-z0-9_.-]{1,50}"
_NODE = rf"(?P<node>{STEP_ID})"
_REF = r"(?P<ref>R-[0-9A-Z]{4,8})"


def adapter_of(interaction: discord.Interaction[Any]) -> ItemHandler:
    """The handler the client carries (``client.adapter``, set by the adapter)."""
    return cast(ItemHandler, interaction.client.adapter)


class ChoiceButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:c:" + _NODE + rf":(?P<choice>{CHOICE_ID})",
):
    """A conversation choice: ``sb:c:<node>:<choice>``."""

    def __init__(self, node: str, choice: str, text: str = "…") -> None:
        super().__init__(
            discord.ui.Button(
                label=text, custom_id=f"sb:c:{node}:{choice}", style=discord.ButtonStyle.secondary
            )
        )
        self.node = node
        self.choice = choice

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ChoiceButton:
        return cls(match["node"], match["choice"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await adapter_of(interaction).on_choice(interaction, self.node, self.choice)


class ChoiceSelect(discord.ui.DynamicItem[discord.ui.Select[Any]], template=r"sb:s:" + _NODE):
    """A long list of choices as a select menu: ``sb:s:<node>``; the value is the choice id."""

    def __init__(self, node: str, options: list[discord.SelectOption] | None = None) -> None:
        super().__init__(
            discord.ui.Select(
                custom_id=f"sb:s:{node}",
                options=options or [discord.SelectOption(label="…", value="menu")],
                min_values=1,
                max_values=1,
            )
        )
        self.node = node

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ChoiceSelect:
        return cls(match["node"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        values = self.item.values
        if values:
            await adapter_of(interaction).on_choice(interaction, self.node, values[0])


class WriteButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"sb:w:" + _NODE):
    """Opens a modal for a free-text step (works in servers, where typing would be public)."""

    def __init__(self, node: str, text: str = "…") -> None:
        super().__init__(
            discord.ui.Button(
                label=text, custom_id=f"sb:w:{node}", style=discord.ButtonStyle.primary
            )
        )
        self.node = node

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> WriteButton:
        return cls(match["node"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await adapter_of(interaction).open_modal(interaction, self.node)


_MOD_STYLES = {
    "resolve": discord.ButtonStyle.success,
    "block": discord.ButtonStyle.secondary,
    "unblock": discord.ButtonStyle.secondary,
}


class ModButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:m:(?P<action>ack|claim|resolve|block|unblock|note):" + _REF,
):
    """Moderator actions on an alert: ``sb:m:<action>:<reference>``. ``block`` stops the
    person who sent the report from reporting again (``unblock`` undoes it); ``note`` opens
    a form for a case note."""

    def __init__(self, action: str, reference: str, text: str = "…") -> None:
        style = _MOD_STYLES.get(action, discord.ButtonStyle.primary)
        super().__init__(
            discord.ui.Button(label=text, custom_id=f"sb:m:{action}:{reference}", style=style)
        )
        self.action = action
        self.reference = reference

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ModButton:
        return cls(match["action"], match["ref"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await adapter_of(interaction).on_mod_button(interaction, self.action, self.reference)


class ModActionButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:x:(?P<action>timeout|ban):" + _REF + r":(?P<user>\d{1,20})",
):
    """Timeout or ban the reported member: ``sb:x:<action>:<reference>:<user id>``."""

    def __init__(self, action: str, reference: str, user_id: int, text: str = "…") -> None:
        super().__init__(
            discord.ui.Button(
                label=text,
                custom_id=f"sb:x:{action}:{reference}:{user_id}",
                style=discord.ButtonStyle.danger,
            )
        )
        self.action = action
        self.reference = reference
        self.user_id = user_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ModActionButton:
        return cls(match["action"], match["ref"], int(match["user"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await adapter_of(interaction).on_member_action(
            interaction, self.action, self.reference, self.user_id
        )


class TextModal(discord.ui.Modal):
    """One text box for a free-text step of the report."""

    def __init__(
        self,
        adapter: ItemHandler,
        node: str,
        title: str,
        prompt: str,
        long: bool,
        max_length: int,
    ) -> None:
        super().__init__(title=title[:45], custom_id=f"sb:modal:{node}", timeout=900)
        self.adapter = adapter
        self.node = node
        self.answer: discord.ui.TextInput[TextModal] = discord.ui.TextInput(
            label=prompt[:45],
            style=discord.TextStyle.paragraph if long else discord.TextStyle.short,
            max_length=max_length,
            required=True,
        )
        self.add_item(self.answer)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await self.adapter.on_modal(interaction, self.node, self.answer.value)


class CaseNoteModal(discord.ui.Modal):
    """A moderator's case note on a report (kept with it, in its evidence pack)."""

    def __init__(self, adapter: ItemHandler, reference: str, title: str, prompt: str) -> None:
        super().__init__(title=title[:45], custom_id=f"sb:casenote:{reference}", timeout=900)
        self.adapter = adapter
        self.reference = reference
        self.text: discord.ui.TextInput[CaseNoteModal] = discord.ui.TextInput(
            label=prompt[:45], style=discord.TextStyle.paragraph, max_length=1500, required=True
        )
        self.add_item(self.text)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await self.adapter.on_case_note(interaction, self.reference, self.text.value)


DYNAMIC_ITEMS = (ChoiceButton, ChoiceSelect, WriteButton, ModButton, ModActionButton)


def choices_view(
    node: str | None, choices: tuple[Choice, ...], write_label: str | None
) -> discord.ui.View | None:
    """Buttons for a few choices, a select menu for many; a write button for text steps."""
    if not choices and not write_label:
        return None
    view = discord.ui.View(timeout=None)
    node = node or "menu"
    if write_label:
        view.add_item(WriteButton(node, write_label))
    if len(choices) > MAX_BUTTONS:
        options = [discord.SelectOption(label=label(c), value=c.id) for c in choices[:25]]
        view.add_item(ChoiceSelect(node, options))
    else:
        for choice in choices:
            view.add_item(ChoiceButton(node, choice.id, label(choice)))
    return view
