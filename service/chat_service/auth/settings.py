"""Token verification settings: users' (auth/jwt.py, JWT_*) and the app's backend's
(auth/backend.py, BACKEND_JWT_*)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chat_service.envconfig import ConfigError, csv, load, var

ALGORITHMS = frozenset({"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384"})


def _algorithms(name: str, raw: str, default: Any) -> tuple[str, ...]:
    algorithms = csv(raw)
    unknown = [a for a in algorithms if a not in ALGORITHMS]
    if unknown:
        raise ConfigError(f"{name} has unsupported algorithms: {unknown}")
    return algorithms or tuple(default)


@dataclass(frozen=True)
class JwtSettings:
    secret: str = var("JWT_SECRET", "")
    public_key: str = var("JWT_PUBLIC_KEY", "")
    # Read at load time into `public_key` (it wins over JWT_PUBLIC_KEY).
    public_key_file: str = var("JWT_PUBLIC_KEY_FILE", "")
    # Unset: HS256, or RS256 when only a public key is given.
    algorithms: tuple[str, ...] = var("JWT_ALGORITHMS", ("HS256",), _algorithms)
    issuer: str = var("JWT_ISSUER", "")
    audience: str = var("JWT_AUDIENCE", "")
    leeway_seconds: int = var("JWT_LEEWAY_SECONDS", 30)
    name_claims: tuple[str, ...] = ("name",)
    avatar_claims: tuple[str, ...] = ("avatar", "picture")
    email_claims: tuple[str, ...] = ("email",)


def load_jwt_settings(env: Mapping[str, str], *, for_serving: bool = True) -> JwtSettings:
    """`for_serving=False` (the `migrate` command) does not require a key."""
    jwt = load(JwtSettings, env)
    key_file = jwt.public_key_file.strip()
    if key_file:
        try:
            jwt = replace(jwt, public_key=Path(key_file).read_text())
        except OSError as exc:
            raise ConfigError(f"JWT_PUBLIC_KEY_FILE {key_file!r} cannot be read: {exc}") from exc
    if not csv(env.get("JWT_ALGORITHMS", "")) and jwt.public_key and not jwt.secret:
        jwt = replace(jwt, algorithms=("RS256",))
    if for_serving and any(a.startswith("HS") for a in jwt.algorithms) and not jwt.secret:
        raise ConfigError("JWT_SECRET is required when JWT_ALGORITHMS includes an HS algorithm")
    if for_serving and any(not a.startswith("HS") for a in jwt.algorithms) and not jwt.public_key:
        raise ConfigError(
            "JWT_PUBLIC_KEY or JWT_PUBLIC_KEY_FILE is required for RS/ES algorithms"
        )
    return jwt


@dataclass(frozen=True)
class BackendJwtSettings:
    secret: str = var("BACKEND_JWT_SECRET", "")
    public_key: str = var("BACKEND_JWT_PUBLIC_KEY", "")
    # Read at load time into `public_key` (it wins over BACKEND_JWT_PUBLIC_KEY).
    public_key_file: str = var("BACKEND_JWT_PUBLIC_KEY_FILE", "")
    # Backend tokens are short-lived: `exp` may be at most this far from `iat`/now.
    max_ttl_seconds: int = var("BACKEND_JWT_MAX_TTL_SECONDS", 3600)
    leeway_seconds: int = var("BACKEND_JWT_LEEWAY_SECONDS", 30)
    # What backend tokens can do to users: each pod re-reads the backend-wide ban list this
    # often (auth/bans.py; bans also reach every pod at once through the broker).
    ban_refresh_seconds: float = var("BAN_REFRESH_SECONDS", 10.0)

    @property
    def enabled(self) -> bool:
        return bool(self.secret or self.public_key)


def load_backend_jwt_settings(env: Mapping[str, str], user_secret: str) -> BackendJwtSettings:
    settings = load(BackendJwtSettings, env)
    key_file = settings.public_key_file.strip()
    if key_file:
        try:
            settings = replace(settings, public_key=Path(key_file).read_text())
        except OSError as exc:
            raise ConfigError(
                f"BACKEND_JWT_PUBLIC_KEY_FILE {key_file!r} cannot be read: {exc}"
            ) from exc
    if settings.secret and settings.secret == user_secret:
        raise ConfigError(
            "BACKEND_JWT_SECRET must differ from JWT_SECRET: with one key every user token "
            "could be turned into a backend token"
        )
    if settings.secret and len(settings.secret) < 32:
        raise ConfigError("BACKEND_JWT_SECRET must be at least 32 characters")
    return settings
