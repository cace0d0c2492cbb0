"""Row -> model mapping of the PostgreSQL stores (rows.py), without a database.

asyncpg records are read by column name only, so plain dicts stand in for them here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chat_service.domain.models import MessageKind, Role, UserProfile
from chat_service.storage.postgres.rows import (
    group_from_row,
    limit_sql,
    member_from_row,
    message_from_row,
    ms,
    profile_from_row,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def _message_row(**over: Any) -> Any:
    row: dict[str, Any] = {
        "id": 7, "group_id": 3, "seq": 12, "user_id": 5, "kind": 0, "content": "hi @Bo",
        "client_msg_id": None, "created_at": T0, "edited_at": None, "deleted_at": None,
        "update_seq": 0, "reply_to_id": None, "mentions": [[9, 3, 3]],
        "user_name": "Al", "user_email": None, "user_avatar": None,
        "r_user": None, "r_name": None, "r_content": None, "r_deleted": False,
        "a_id": None, "a_name": None, "a_type": None, "a_size": None,
        "a_width": None, "a_height": None, "a_sha256": None, "reactions": None,
        "thread_parent_id": None, "also_in_group": False, "reply_count": 0,
        "last_reply_at": None, "participants": None, "pinned_by": None, "pinned_at": None,
    }
    row.update(over)
    return row


def test_timestamps_are_epoch_milliseconds() -> None:
    assert ms(T0) == int(T0.timestamp() * 1000)
    assert ms(T0) % 1000 == 678


def test_null_profile_columns_read_as_empty_strings() -> None:
    row: Any = {"user_id": 4, "name": None, "email": "a@b", "avatar": None}
    assert profile_from_row(row) == UserProfile(4, "", "a@b", "")
    prefixed: Any = {"id": 4, "user_name": "Al", "user_email": None, "user_avatar": "x.png"}
    assert profile_from_row(prefixed, "id", "user_") == UserProfile(4, "Al", "", "x.png")


def test_member_row_carries_role_and_join_time() -> None:
    row: Any = {"user_id": 4, "role": 2, "joined_at": T0, "name": "Al", "email": None,
           "avatar": None}
    member = member_from_row(row)
    assert (member.user.name, member.role, member.joined_at_ms) == ("Al", Role.ADMIN, ms(T0))


def test_plain_message_row() -> None:
    m = message_from_row(_message_row())
    assert (m.id, m.group_id, m.seq, m.kind) == (7, 3, 12, MessageKind.TEXT)
    assert m.sender == UserProfile(5, "Al", "", "")
    assert m.client_msg_id == "" and m.reply_to_id == 0 and m.reply_quote is None
    assert [(x.user_id, x.offset, x.length) for x in m.mentions] == [(9, 3, 3)]
    assert m.reactions == () and m.attachment is None
    assert m.edited_at_ms == 0 and not m.deleted


def test_reply_quote_hides_the_content_of_a_deleted_original() -> None:
    live = message_from_row(_message_row(reply_to_id=2, r_user=6, r_name=None, r_content="x"))
    assert live.reply_quote is not None
    assert (live.reply_quote.user_name, live.reply_quote.content) == ("", "x")
    gone = message_from_row(
        _message_row(reply_to_id=2, r_user=6, r_content="x", r_deleted=True)
    )
    assert gone.reply_quote is not None and gone.reply_quote.content == ""
    assert gone.reply_quote.deleted
    # The original's row is gone entirely (r_user NULL): the id stays, no quote.
    orphan = message_from_row(_message_row(reply_to_id=2))
    assert orphan.reply_to_id == 2 and orphan.reply_quote is None


def test_reactions_edits_deletes_and_attachment() -> None:
    m = message_from_row(
        _message_row(
            reactions=[["👍", 2, True], ["🎉", 1, None]], edited_at=T0, deleted_at=T0,
            a_id="att1", a_name="f.png", a_type="image/png", a_size=10, a_width=2,
            a_height=3, a_sha256="ab",
        )
    )
    assert [(r.emoji, r.count, r.mine) for r in m.reactions] == [("👍", 2, True),
                                                                  ("🎉", 1, False)]
    assert m.edited_at_ms == ms(T0) and m.deleted
    assert m.attachment is not None
    assert (m.attachment.id, m.attachment.width, m.attachment.height) == ("att1", 2, 3)


def test_group_row_without_per_member_columns_reads_zero() -> None:
    row: Any = {"id": 1, "name": "g", "description": "", "created_by": 5, "created_at": T0,
           "invite_only": True, "last_seq": 4, "member_count": 2, "my_role": 3}
    g = group_from_row(row, [5, 6])
    assert g.member_ids == (5, 6) and g.my_role == Role.OWNER
    assert (g.read_seq, g.unread_count, g.mention_count, g.muted, g.last_update_seq) == (
        0, 0, 0, False, 0)


def test_group_row_as_a_stranger_sees_it() -> None:
    row: Any = {"id": 1, "name": "g", "description": "", "created_by": 5, "created_at": T0,
           "invite_only": False, "last_seq": 4, "member_count": 2, "my_role": None,
           "read_seq": None, "unread_count": None, "mention_count": None, "muted": None,
           "last_update_seq": 9}
    g = group_from_row(row)
    assert g.my_role == Role.NONE and g.read_seq == 0 and g.last_update_seq == 9


def test_page_limits_are_written_as_numbers_and_nothing_else() -> None:
    # Page sizes go into the statement text (so PostgreSQL keeps one plan per size): only a
    # non-negative int may get there.
    assert limit_sql(51) == "LIMIT 51"
    for bad in (-1, "51; DROP TABLE messages", 5.0, None, True):
        with pytest.raises(ValueError):
            limit_sql(bad)  # type: ignore[arg-type]
