"""What a member may see of other members. Their e-mail addresses (from the app's token
claims) are shown only when the operator enables it (EXPOSE_MEMBER_EMAILS); otherwise nobody's
address leaves the service, the caller's own included (their app already knows it)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from chat_service.domain.models import Member, UserProfile
from chat_service.envconfig import var


@dataclass(frozen=True)
class Privacy:
    expose_member_emails: bool = var("EXPOSE_MEMBER_EMAILS", False)

    def user(self, u: UserProfile) -> UserProfile:
        return u if self.expose_member_emails or not u.email else replace(u, email="")

    def member(self, m: Member) -> Member:
        shown = self.user(m.user)
        return m if shown is m.user else replace(m, user=shown)


PRIVATE = Privacy()  # the default: no member e-mails leave the service
