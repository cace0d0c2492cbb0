"""The domain's input limits, set by environment variables (envconfig imports nothing of the
service, so the domain may use it)."""

from __future__ import annotations

from dataclasses import dataclass

from chat_service.envconfig import var


@dataclass(frozen=True)
class Limits:
    """Input limits of the domain (INVALID_ARGUMENT names the one broken)."""

    group_name_max: int = var("LIMIT_GROUP_NAME_CHARS", 100)
    group_description_max: int = var("LIMIT_GROUP_DESCRIPTION_CHARS", 1000)
    message_max_chars: int = var("LIMIT_MESSAGE_CHARS", 4000)
    members_per_group_max: int = var("LIMIT_MEMBERS_PER_GROUP", 1000)
    history_page_default: int = var("HISTORY_PAGE_DEFAULT", 50)
    history_page_max: int = var("HISTORY_PAGE_MAX", 200)
    client_msg_id_max: int = 64
    replay_max_messages: int = var("REPLAY_MAX_MESSAGES", 2000)
    pins_per_group_max: int = var("LIMIT_PINS_PER_GROUP", 50)
    search_query_max_chars: int = var("LIMIT_SEARCH_QUERY_CHARS", 256)
    search_page_default: int = var("SEARCH_PAGE_DEFAULT", 20)
    search_page_max: int = var("SEARCH_PAGE_MAX", 50)
    search_results_max: int = var("SEARCH_RESULTS_MAX", 1000)
    # Matches ranked per search when a query is common: the newest max(page end, this /
    # groups) of each group (every match when fewer are expected).
    search_candidates: int = var("SEARCH_RANK_CANDIDATES", 1000)
