"""Configuration from the environment (and a `.env` file), with defaults that let
`make run` work on a bare machine."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path("var")


def _default_secret_key() -> str:
    """A key made once and kept in `var/secret_key`, so encrypted tokens survive restarts."""
    path = DATA_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    host: str = "0.0.0.0"
    port: int = 8080
    app_url: str = ""
    database_url: str = f"sqlite:///{DATA_DIR}/crm.sqlite3"
    redis_url: str = ""
    dramatiq_namespace: str = "saleor-crm"
    # None: run the Dramatiq worker inside the web process exactly when REDIS_URL is unset.
    run_worker_in_process: bool | None = None
    # Threads of that in-process worker (imports, mailings, tracking and folds share them).
    worker_in_process_threads: int = 2
    smtp_url: str = ""
    secret_key: SecretStr = Field(default_factory=lambda: SecretStr(_default_secret_key()))
    # Which Saleor API URLs may install; read by plugin/saleor/egress.py (SaleorEgress).
    allowed_saleor_urls: str = "*"
    # Which carrier API base URLs may be called (staff set them); the same rules (CarrierEgress).
    allowed_carrier_urls: str = "*"
    # When set, `GET /metrics` needs `Authorization: Bearer <this>` (else it is public).
    metrics_token: SecretStr = SecretStr("")
    log_level: str = "INFO"

    # Request bodies (plugin.kit.bodies): larger ones get 413 while they stream in.
    # Saleor's and the carriers' webhooks:
    max_webhook_body_bytes: int = 5 * 1024 * 1024
    # `POST /graphql` (a query and its variables):
    max_graphql_body_bytes: int = 256 * 1024
    # `POST /api/register` (one token):
    max_register_body_bytes: int = 64 * 1024
    # The dashboard's fragment and template-preview posts:
    max_dashboard_body_bytes: int = 256 * 1024
    # The unsubscribe and preference forms of the public `/l/…` links:
    max_link_form_bytes: int = 16 * 1024
    sweep_interval_seconds: float = 30.0
    sweep_min_age_seconds: float = 20.0
    fold_max_attempts: int = 8
    # How often every segment is recomputed for the whole base (time-driven rules).
    segments_refresh_seconds: float = 60.0
    # A saved segment of a shop with more customers than this is computed by the next
    # scheduled refresh (the dashboard shows it "being computed"), not inside the request.
    segments_inline_fill_max: int = 200_000
    # That computation goes chunk by chunk of this many customers, each committed with its
    # progress (the dashboard's percentage and ETA).
    segments_fill_chunk: int = 50_000
    # How often each shop's purchase model (BG/NBD + Gamma-Gamma) is refitted.
    predictions_refit_seconds: float = 6 * 3600.0
    http_timeout_seconds: float = 10.0
    # PostgreSQL connections kept open per pool (each process has two: transactions and
    # single-statement autocommit); as many again may open briefly under bursts.
    database_pool_size: int = 16
    # How long a web process trusts what it read about an installation (0: never cache).
    installation_cache_seconds: float = 5.0
    # Parcel tracking: how often the scheduler looks for due polls, how many it takes per
    # tick, and after how many days without movement staff are alerted.
    tracking_tick_seconds: float = 30.0
    tracking_poll_batch: int = 2000
    tracking_stalled_days: float = 5.0
    # Triggered mailings (plugin.messaging): how often the scheduler tick runs, how far
    # behind "now" the flows read the timeline (a transaction may commit an older id late),
    # the default sender, and how often a send is tried before it counts as failed.
    messaging_tick_seconds: float = 2.0
    messaging_timeline_lag_seconds: float = 30.0
    messaging_sender_email: str = "shop@localhost"
    messaging_send_max_attempts: int = 6
    # Origins of Saleor dashboards served apart from their API, allowed to frame the
    # dashboard pages: `https://dash.example.com` (any shop) or
    # `https://api.example.com/graphql/=https://dash.example.com` (one shop), comma-separated.
    # A shop's own API origin is always allowed (Saleor Cloud serves both from one origin).
    dashboard_origins: str = ""
    # Import of a shop's history (plugin.importer): Saleor's page size (its maximum is 100)
    # and how many requests per second the app allows itself against one shop.
    import_page_size: int = 100
    import_requests_per_second: float = 10.0
    # Data lifecycle (plugin.lifecycle): days an uninstalled shop's data is kept (a
    # re-install within them resumes), days raw webhook bodies are kept once folded, days
    # message bodies are kept (pruned by the messaging package's registered pruner).
    uninstall_retention_days: float = 30.0
    inbox_retention_days: float = 30.0
    message_body_retention_days: float = 30.0
    # How often the retention job runs.
    retention_interval_seconds: float = 3600.0

    @property
    def public_url(self) -> str:
        """Base URL that Saleor and browsers use to reach the app, without a trailing slash."""
        return (self.app_url or f"http://localhost:{self.port}").rstrip("/")

    @property
    def async_database_url(self) -> str:
        """The URL with the async driver SQLAlchemy needs (asyncpg / aiosqlite)."""
        url = self.database_url
        for prefix, driver in (
            ("postgresql+asyncpg://", None),
            ("postgresql+psycopg://", "postgresql+asyncpg://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite+aiosqlite://", None),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(prefix):
                return url if driver is None else driver + url[len(prefix) :]
        raise ValueError(f"DATABASE_URL must be a postgresql:// or sqlite:// URL, got {url!r}")

    @property
    def worker_in_process(self) -> bool:
        if self.run_worker_in_process is None:
            return not self.redis_url
        return self.run_worker_in_process

    @property
    def is_sqlite(self) -> bool:
        return self.async_database_url.startswith("sqlite")


def get_settings() -> Settings:
    return Settings()
