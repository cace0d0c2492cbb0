"""PostgreSQL settings (storage/postgres): where the database is, the pool, migrations at
start and group commit of sends."""

from __future__ import annotations

from dataclasses import dataclass

from chat_service.envconfig import identifier, var


@dataclass(frozen=True)
class DatabaseSettings:
    host: str = var("DB_HOST", "127.0.0.1")
    port: int = var("DB_PORT", 5432)
    database: str = var("DB_DATABASE", "chat")
    username: str = var("DB_USERNAME", "chat")
    password: str = var("DB_PASSWORD", "chat")
    pool_min: int = var("DB_POOL_MIN", 2)
    pool_max: int = var("DB_POOL_MAX", 20)
    migrate_on_start: bool = var("MIGRATE_ON_START", False)
    # Group commit: plain sends arriving during a commit share the next one.
    batch_sends: bool = var("BATCH_SENDS", True)
    # The text-search configuration of message search; migrate() applies it to the column.
    text_search_config: str = var("SEARCH_TEXT_CONFIG", "simple", identifier)

    @property
    def dsn(self) -> str:
        """The address without the password (given to the pool on its own)."""
        return f"postgresql://{self.username}@{self.host}:{self.port}/{self.database}"
