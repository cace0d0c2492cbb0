"""Message webhook settings (notifications/webhook.py); no URL: no webhooks."""

from __future__ import annotations

from dataclasses import dataclass

from chat_service.envconfig import var


@dataclass(frozen=True)
class NotifySettings:
    webhook_url: str = var("NOTIFY_WEBHOOK_URL", "")
    webhook_secret: str = var("NOTIFY_WEBHOOK_SECRET", "")
    claim_idle_ms: int = var("NOTIFY_CLAIM_IDLE_MS", 30_000)
