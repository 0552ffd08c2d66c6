"""Matrix ids as the core's: people by user id, communities by room id."""

from __future__ import annotations

from safebot.model import CommunityId, PersonId

__all__ = ["PLATFORM", "community_id", "person_of"]

PLATFORM = "matrix"


def person_of(user_id: str) -> PersonId:
    return PersonId(PLATFORM, user_id)


def community_id(room_id: str) -> CommunityId:
    return CommunityId(PLATFORM, room_id)
