"""Settings from the environment (prefix PINGPOST_)."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PINGPOST_", extra="ignore")

    database_url: str = "sqlite:///pingpost.db"
    admin_token: str | None = None
    secret_key: str | None = None
    key_file: str | None = None
    static_fallback: bool = True
    max_body_bytes: int = 262_144
    log_level: str = "info"
    json_logs: bool = True
    post_retention_days: int = 90
    db_pool_size: int = 10
    # asyncpg's prepared statements per connection; 0 behind PgBouncer in transaction mode older than
    # 1.21 (or without max_prepared_statements): docs/deploy.md
    db_statement_cache_size: int = 100
    delivery_grace_ms: int = 30_000
    idempotency_lease_s: int = 300
    ping_rate_limit_per_s: int = 0  # per campaign, across processes; 0 = no limit unless the campaign sets one
    max_in_flight_pings: int = 1000  # per process; beyond it pings answer 503 at once
    webhook_sender: bool = True  # run the webhook/postback sender in this process (one is active per database)
    # Process leases of cap slots and funds (docs/scale-out.md), for several processes over PostgreSQL
    # (SQLite has one writer: nothing to gain). A lease lives `lease_ttl_ms` (drawn from until 3/4 of it).
    leases: bool = False
    lease_ttl_ms: int = 5000
    lease_max_slots: int = 500
    lease_share: int = 4  # a lease takes at most 1/lease_share of what is left of a cap or the funds
    lease_min_left: int = 8  # below this many slots (or prices) left, no lease: one at a time
    cookie_secure: bool = False  # the console's session cookie only over HTTPS (docs/console.md)
    # Verification vendors (docs/verification.md). Secrets: never in an answer, a log line or a repr.
    trustedform_api_key: SecretStr | None = None
    jornaya_base_url: str = "https://api.leadid.com"
    jornaya_account_code: SecretStr | None = None


def normalise_database_url(url: str) -> str:
    """Accept sqlite:///path, postgresql://, postgres:// and postgresql+asyncpg:// URLs."""
    if url.startswith("postgresql+asyncpg://"):
        return "postgresql://" + url[len("postgresql+asyncpg://") :]
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://") :]
    return url


def is_postgres(url: str) -> bool:
    return normalise_database_url(url).startswith("postgresql://")


def sqlite_path(url: str) -> str:
    if not url.startswith("sqlite:///"):
        raise ValueError(f"unsupported database URL scheme: {url.split(':', 1)[0]}")
    return url[len("sqlite:///") :]
