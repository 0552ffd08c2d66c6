"""What a report to the homeserver's admins is made of (the requests themselves are tested
against real Synapse in test_matrix_adapter.py)."""

from __future__ import annotations

from safebot.adapters.matrix.server_report import message_links, user_ids


def test_user_ids_named_in_the_reported_person_answer() -> None:
    assert user_ids("it's @mallory:example.org, he also uses @m_2:matrix.org:8448") == [
        "@mallory:example.org",
        "@m_2:matrix.org:8448",
    ]
    assert user_ids("@a:x.y @a:x.y @b:x.y") == ["@a:x.y", "@b:x.y"]
    assert user_ids(None) == [] and user_ids("someone on discord") == []
    assert len(user_ids(" ".join(f"@u{i}:x.y" for i in range(50)))) == 10  # bounded


def test_message_links_only_with_a_room_id() -> None:
    links = (
        "https://matrix.to/#/!abc:example.org/$ev1?via=example.org",
        "https://matrix.to/#/#alias:example.org/$ev2",  # an alias: not resolved, not sent
        "https://matrix.to/#/!abc:example.org/$ev1",  # the same message twice
        "https://example.org/not-matrix",
    )
    assert message_links(links) == [("!abc:example.org", "$ev1")]


def test_who_may_ban_whom() -> None:
    from safebot.adapters.matrix.powers import RoomPowers

    powers = RoomPowers.from_state(
        "@owner:x",
        {"room_version": "12"},
        {"ban": 50, "kick": 50, "users": {"@mod:x": 50, "@helper:x": 40, "@bad:x": 50}},
        ["@owner:x", "@mod:x", "@helper:x", "@bad:x"],
    )
    assert powers.can_ban("@owner:x") and powers.can_ban("@mod:x")
    assert not powers.can_ban("@helper:x")  # below the ban level
    assert powers.outranks("@owner:x", "@bad:x")
    assert not powers.outranks("@mod:x", "@bad:x")  # the same level
    assert not powers.outranks("@mod:x", "@owner:x")  # never a creator
