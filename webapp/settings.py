"""Circuit Atlas settings: every value comes from the environment, with a safe local default.

The README lists every variable. Malformed values stop start-up with ImproperlyConfigured naming
the variable (see webapp/env.py). ATLAS_ENV=production turns off the local conveniences: no
embedded servers, no generated SECRET_KEY, DEBUG off unless asked for.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from webapp import embedded
from webapp.env import env_bool, env_choice, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent

ATLAS_ENV = env_choice("ATLAS_ENV", "local", ("local", "production"))
PRODUCTION = ATLAS_ENV == "production"
VAR_DIR = embedded.var_dir()
DEBUG = env_bool("DEBUG", not PRODUCTION)


def _secret_key() -> str:
    key = env_str("SECRET_KEY", "")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when ATLAS_ENV=production")
    # Local use: generate once and keep it, so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Where `manage.py up` serves (its --host/--port override these).
SERVER_HOST = env_str("HOST", "127.0.0.1")
SERVER_PORT = env_int("PORT", 8000, minimum=1, maximum=65535)
# Its web server processes (uvicorn --workers) and whether they log every request.
WEB_WORKERS = env_int("WEB_WORKERS", 2, minimum=1, maximum=32)
WEB_ACCESS_LOG = env_bool("WEB_ACCESS_LOG", False)


def _service_url(
    name: str, schemes: tuple[str, ...], server: embedded.EmbeddedPostgres | embedded.EmbeddedRedis
) -> str:
    url = env_url(name, schemes)
    if url is not None:
        return url
    if PRODUCTION:
        raise ImproperlyConfigured(f"{name} must be set when ATLAS_ENV=production")
    # Local default: the embedded server under VAR_DIR, which manage.py starts when needed. When
    # it is not running (e.g. mypy importing settings), name a host that says so in any error.
    running = server.running_url()
    if running is None:
        scheme = "postgres" if isinstance(server, embedded.EmbeddedPostgres) else "redis"
        return f"{scheme}://embedded-{scheme}-not-running-use-manage-py-up.invalid/0"
    return running


DATABASE_URL = _service_url(
    "DATABASE_URL", ("postgres", "postgresql"), embedded.EmbeddedPostgres(VAR_DIR)
)
REDIS_URL = _service_url("REDIS_URL", ("redis", "rediss"), embedded.EmbeddedRedis(VAR_DIR))

# Database connections. Under the ASGI server every request runs in its own context, so Django's
# persistent connections (CONN_MAX_AGE) are never reused there: they pile up with concurrency
# until Postgres refuses new clients. The web process therefore borrows connections from a
# psycopg pool of bounded size (webapp/asgi.py marks the process), returned at the end of each
# request. Celery's prefork children and manage.py commands keep one persistent connection each:
# a pool's threads do not survive a fork. DATABASE_POOL=false (e.g. behind PgBouncer, which pools
# itself) makes the web process connect per request instead. The web process is the one whose
# settings are first imported by webapp/asgi.py (what every ASGI server loads).
ASGI_PROCESS = "webapp.asgi" in sys.modules
DATABASE_POOL = ASGI_PROCESS and env_bool("DATABASE_POOL", True)
DATABASE_POOL_MIN_SIZE = env_int("DATABASE_POOL_MIN_SIZE", 2, minimum=0)
DATABASE_POOL_MAX_SIZE = env_int(
    "DATABASE_POOL_MAX_SIZE",
    10,
    minimum=max(1, DATABASE_POOL_MIN_SIZE),
    maximum=embedded.POSTGRES_MAX_CONNECTIONS // 4,
)
# A request that waits this long for a free connection fails (503, see core/api.py).
DATABASE_POOL_TIMEOUT_S = env_int("DATABASE_POOL_TIMEOUT_S", 10, minimum=1)
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=0 if ASGI_PROCESS else env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        # Check a connection before reusing it (or before the pool lends it: core/postgres), so
        # one broken by a database restart is replaced, not given to a request.
        conn_health_checks=True,
    )
}
# Behind PgBouncer in transaction mode a cursor must not outlive its transaction (README).
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool(
    "DATABASE_DISABLE_SERVER_SIDE_CURSORS", False
)
# Connect within a few seconds or fail: an unreachable server must give a prompt 503, not a hang.
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
if DATABASE_POOL:
    DATABASES["default"]["ENGINE"] = "core.postgres"
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": DATABASE_POOL_MIN_SIZE,
        "max_size": DATABASE_POOL_MAX_SIZE,
        "timeout": DATABASE_POOL_TIMEOUT_S,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served as our own static files
    "channels",
    "csp",
    "webapp",
    "features",
    "graphs",
    "jobs",
    "steering",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "webapp.security.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "webapp" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# Email (password resets). Locally printed to the terminal; in production, SMTP from the env.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Circuit Atlas <atlas@localhost>")

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

# Static files: Vite builds into static/dist with hashed names; collectstatic copies and
# compresses them into STATIC_ROOT, and whitenoise serves them with far-future cache headers.
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
# Graph artifacts and uploads. `local`: the MEDIA_ROOT folder, which every process must share.
# `s3`: one S3-compatible bucket (AWS S3, MinIO, ...) that the web and every worker reach, so GPU
# machines on other hosts need no shared disk (docs/jobs.md). Objects are private (no ACL, no
# public URLs): the web process reads them and serves them itself, with their ETag and gzip.
MEDIA_STORAGE = env_choice("MEDIA_STORAGE", "local", ("local", "s3"))


def _s3_storage() -> dict[str, object]:
    bucket = env_str("S3_BUCKET", "")
    if not bucket:
        raise ImproperlyConfigured("S3_BUCKET must be set when MEDIA_STORAGE=s3")
    access_key, secret_key = env_str("S3_ACCESS_KEY_ID", ""), env_str("S3_SECRET_ACCESS_KEY", "")
    if bool(access_key) != bool(secret_key):
        raise ImproperlyConfigured("set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither")
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            # Unset: AWS itself. MinIO and other S3-compatible servers: their URL.
            "endpoint_url": env_url("S3_ENDPOINT_URL", ("http", "https")),
            "region_name": env_str("S3_REGION", "us-east-1"),
            # Empty: boto3's own credential chain (instance roles, ~/.aws, AWS_* variables).
            "access_key": access_key or None,
            "secret_key": secret_key or None,
            "location": env_str("S3_PREFIX", "").strip("/"),
            # MinIO serves buckets under the path (http://minio:9000/bucket/key).
            "addressing_style": env_choice(
                "S3_ADDRESSING_STYLE", "auto", ("auto", "path", "virtual")
            ),
            "default_acl": None,
            "querystring_auth": True,
            # Like the local folder: a name that exists gets a new one, never overwritten.
            "file_overwrite": False,
        },
    }


STORAGES = {
    "default": _s3_storage()
    if MEDIA_STORAGE == "s3"
    else {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# The web process keeps the most recently served gzipped artifacts in memory (graphs/artifacts.py)
# so a popular graph is not fetched from the bucket (or disk) on every request. Artifacts are
# immutable (a new graph is a new name), so the copy never goes stale.
ARTIFACT_MEMORY_CACHE_MB = env_int("ARTIFACT_MEMORY_CACHE_MB", 64, minimum=0)
# Anonymous graph lists are answered from Redis while no write has changed them
# (graphs/list_cache.py); this bounds an entry's life for writes that bypass the ORM. 0: off.
GRAPH_LIST_CACHE_S = env_int("GRAPH_LIST_CACHE_S", 30, minimum=0, maximum=3600)
# Graph diffs (analysis/diff_cache.py): prepared graphs and encoded answers kept per web process,
# so comparing a graph again, or with another graph, does not read and parse it again.
ANALYSIS_CACHE_MB = env_int("ANALYSIS_CACHE_MB", 128, minimum=0)
# Larger artifacts (0: all) are streamed in chunks instead of being read whole into memory.
ARTIFACT_STREAM_ABOVE_MB = env_int("ARTIFACT_STREAM_ABOVE_MB", 8, minimum=0)
# Vite names its chunks name-<8+ char hash>.ext; those never change, so cache them forever.
WHITENOISE_IMMUTABLE_FILE_TEST = r"/dist/assets/[^/]+-[0-9A-Za-z_-]{8,}\.[0-9a-z.]+$"
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG


def _redis_db(url: str, offset: int) -> str:
    """The same server, logical database ``offset`` places after the one in ``url``."""
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0) if parts.path.strip("/").isdigit() else 0
    return urlunsplit(parts._replace(path=f"/{(base + offset) % 16}"))


# The cache lives in its own logical database: cache.clear() flushes its whole database, and
# that must never drop queued jobs or websocket messages.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": _redis_db(REDIS_URL, 1),
        "KEY_PREFIX": "atlas",
        "TIMEOUT": 300,
        # One pool per process instead of one per request (core/cache.py).
        "OPTIONS": {"pool_class": "core.cache.SharedConnectionPool"},
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, and channels_redis blocks 5 s
        # (BZPOPMIN) waiting for messages: an idle socket's reader then times out and the
        # consumer dies. A read timeout above the blocking time keeps idle sockets alive.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "prefix": "atlas:ws"},
    }
}

# Celery (see core/celery.py): JSON only, explicit task names, late acks, one message at a time.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True


def _time_limits(name: str) -> dict[str, tuple[int, int]]:
    """Per-model job time limits: ``slug=soft:hard,slug2=soft:hard`` (seconds, soft < hard)."""
    limits: dict[str, tuple[int, int]] = {}
    for item in env_list(name, []):
        slug, _, pair = item.partition("=")
        soft, _, hard = pair.partition(":")
        if not slug.strip() or not soft.isdigit() or not hard.isdigit() or int(soft) >= int(hard):
            raise ImproperlyConfigured(
                f"{name} must look like gemma-2-2b=600:660,demo=60:90 (soft < hard), got {item!r}"
            )
        limits[slug.strip()] = (int(soft), int(hard))
    return limits


# Jobs (jobs/, inference/tasks.py; docs/jobs.md). Workers write a heartbeat on their running job;
# a job whose heartbeat is older than the timeout is re-queued once, then failed.
JOBS_MAX_ACTIVE_PER_USER = env_int("JOBS_MAX_ACTIVE_PER_USER", 200, minimum=1)
JOBS_BATCH_MAX_PROMPTS = env_int("JOBS_BATCH_MAX_PROMPTS", 100, minimum=1, maximum=1000)
# A cheap bound before tokenizing; the real cap is the model's max_prompt_tokens. 65,536
# characters hold an 8,192-token prompt of ordinary text (about 4-6 characters a token).
JOBS_MAX_PROMPT_CHARS = env_int("JOBS_MAX_PROMPT_CHARS", 65_536, minimum=10)
JOBS_MAX_FEATURE_NODES = env_int("JOBS_MAX_FEATURE_NODES", 10_000, minimum=1)
JOBS_MAX_ATTEMPTS = env_int("JOBS_MAX_ATTEMPTS", 2, minimum=1, maximum=10)
JOBS_HEARTBEAT_INTERVAL_S = env_int("JOBS_HEARTBEAT_INTERVAL_S", 2, minimum=1)
JOBS_HEARTBEAT_TIMEOUT_S = env_int("JOBS_HEARTBEAT_TIMEOUT_S", 20, minimum=3)
JOBS_REAP_INTERVAL_S = env_int("JOBS_REAP_INTERVAL_S", 10, minimum=1)
# Progress rows and websocket events are written at most this often (phase changes always are).
JOBS_PROGRESS_INTERVAL_MS = env_int("JOBS_PROGRESS_INTERVAL_MS", 250, minimum=0)
JOBS_SOFT_TIME_LIMIT_S = env_int("JOBS_SOFT_TIME_LIMIT_S", 1800, minimum=1)
JOBS_HARD_TIME_LIMIT_S = env_int("JOBS_HARD_TIME_LIMIT_S", 1860, minimum=2)
if JOBS_HARD_TIME_LIMIT_S <= JOBS_SOFT_TIME_LIMIT_S:
    raise ImproperlyConfigured("JOBS_HARD_TIME_LIMIT_S must be above JOBS_SOFT_TIME_LIMIT_S")
JOBS_TIME_LIMITS = _time_limits("JOBS_TIME_LIMITS")
JOBS_TOKENIZE_TIMEOUT_S = env_int("JOBS_TOKENIZE_TIMEOUT_S", 10, minimum=1)
JOBS_TOKENIZE_CACHE_S = env_int("JOBS_TOKENIZE_CACHE_S", 3600, minimum=0)
# Worker side: models kept loaded per worker process, and where/how they run.
JOBS_WORKER_MODEL_CACHE = env_int("JOBS_WORKER_MODEL_CACHE", 2, minimum=1)
JOBS_WORKER_DEVICE = env_choice("JOBS_WORKER_DEVICE", "auto", ("auto", "cpu", "cuda"))
JOBS_WORKER_DTYPE = env_choice("JOBS_WORKER_DTYPE", "float32", ("float32", "bfloat16", "float16"))
# torch CPU threads per worker process; 0 = auto: 1 on CPU (small models run fastest on one
# thread, and a shared machine is not oversubscribed), torch's default on a GPU.
JOBS_WORKER_TORCH_THREADS = env_int("JOBS_WORKER_TORCH_THREADS", 0, minimum=0)
# The memory one attribution may use, in GB (weights included); 0 = the device's: the GPU's total
# memory, or the machine's physical memory on a CPU worker. The planner picks a batch size that
# fits or fails the job before its backward passes (docs/engine.md, "Memory").
JOBS_WORKER_MEMORY_GB = env_int("JOBS_WORKER_MEMORY_GB", 0, minimum=0)
# Feature dashboards jobs (docs/dashboards.md): corpus uploads up to this size (stored in file
# storage, where every worker reads them), server paths only under these roots (on the web
# machine and, at the same path, on the workers), the most tokens one job may read, where a
# worker keeps checkpoints and downloaded corpora, and a longer time limit than other jobs (a
# job that runs out of time keeps its checkpoint: run it again to continue).
DASHBOARDS_UPLOAD_MAX_BYTES = env_int(
    "DASHBOARDS_UPLOAD_MAX_BYTES", 100 * 1024 * 1024, minimum=1024
)
DASHBOARDS_CORPUS_ROOTS = [
    Path(root) for root in env_list("DASHBOARDS_CORPUS_ROOTS", [str(VAR_DIR / "corpora")])
]
DASHBOARDS_MAX_TOKENS = env_int("DASHBOARDS_MAX_TOKENS", 100_000_000, minimum=64)
DASHBOARDS_WORK_DIR = Path(env_str("DASHBOARDS_WORK_DIR", str(VAR_DIR / "dashboards")))
DASHBOARDS_CHECKPOINT_EVERY = env_int("DASHBOARDS_CHECKPOINT_EVERY", 50, minimum=1)
DASHBOARDS_SOFT_TIME_LIMIT_S = env_int("DASHBOARDS_SOFT_TIME_LIMIT_S", 6 * 3600, minimum=1)
DASHBOARDS_HARD_TIME_LIMIT_S = env_int("DASHBOARDS_HARD_TIME_LIMIT_S", 6 * 3600 + 60, minimum=2)
if DASHBOARDS_HARD_TIME_LIMIT_S <= DASHBOARDS_SOFT_TIME_LIMIT_S:
    raise ImproperlyConfigured(
        "DASHBOARDS_HARD_TIME_LIMIT_S must be above DASHBOARDS_SOFT_TIME_LIMIT_S"
    )
# Redis hands an unacknowledged message to another worker after the visibility timeout, and
# job messages are acknowledged late (when the job ends): a job still running then would run
# twice. So the timeout follows the longest hard time limit any job can have (ordinary jobs,
# per-model limits, dashboards), with a margin for the worker to record the end and acknowledge.
JOBS_LONGEST_HARD_TIME_LIMIT_S = max(
    JOBS_HARD_TIME_LIMIT_S,
    DASHBOARDS_HARD_TIME_LIMIT_S,
    *(hard for _soft, hard in JOBS_TIME_LIMITS.values()),
)
_visibility_timeout = env_int(
    "CELERY_VISIBILITY_TIMEOUT", JOBS_LONGEST_HARD_TIME_LIMIT_S + 600, minimum=60
)
if _visibility_timeout <= JOBS_LONGEST_HARD_TIME_LIMIT_S:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT must be above the longest job time limit "
        f"({JOBS_LONGEST_HARD_TIME_LIMIT_S} s) or a job would run twice, got {_visibility_timeout}"
    )
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _visibility_timeout}
# Steering and interventions (steering/, docs/steering.md): bounds on one run. The engine refuses
# values beyond 1e4 whatever these say.
STEERING_MAX_INTERVENTIONS = env_int("STEERING_MAX_INTERVENTIONS", 256, minimum=1, maximum=10_000)
STEERING_MAX_NEW_TOKENS = env_int("STEERING_MAX_NEW_TOKENS", 128, minimum=1, maximum=1024)
STEERING_MAX_SET_VALUE = env_int("STEERING_MAX_SET_VALUE", 1000, minimum=1, maximum=10_000)
STEERING_MAX_SCALE = env_int("STEERING_MAX_SCALE", 100, minimum=1, maximum=10_000)
# The local all-in-one worker (manage.py up) also starts consuming the queue of any model added
# while it runs.
JOBS_WORKER_SERVE_ALL_MODELS = env_bool("JOBS_WORKER_SERVE_ALL_MODELS", False)
# Automated explanations with an LLM (docs/explanations.md): any OpenAI-compatible
# chat-completions endpoint (vLLM, Ollama, llama.cpp's server, OpenAI). Unset base URL: only the
# offline token-pattern method is offered. The key goes to the endpoint and nowhere else.
EXPLAINER_BASE_URL = env_url("EXPLAINER_BASE_URL", ("http", "https")) or ""
EXPLAINER_MODEL = env_str("EXPLAINER_MODEL", "")
EXPLAINER_API_KEY = env_str("EXPLAINER_API_KEY", "")
EXPLAINER_CONCURRENCY = env_int("EXPLAINER_CONCURRENCY", 4, minimum=1, maximum=64)
EXPLAINER_TIMEOUT_S = env_int("EXPLAINER_TIMEOUT_S", 60, minimum=1, maximum=3600)
if EXPLAINER_BASE_URL and not EXPLAINER_MODEL:
    raise ImproperlyConfigured("EXPLAINER_MODEL must be set when EXPLAINER_BASE_URL is")


def _rate(name: str, default: str) -> str:
    """A DRF throttle rate such as ``60/hour``; anything else stops start-up."""
    value = env_str(name, default)
    count, _, period = value.partition("/")
    if not count.isdigit() or period not in {"s", "sec", "m", "min", "h", "hour", "d", "day"}:
        raise ImproperlyConfigured(f"{name} must look like 60/min or 1000/hour, got {value!r}")
    return value


REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Bearer first: an anonymous API call then gets 401 with WWW-Authenticate: Bearer.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.api.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "writes": _rate("API_WRITE_RATE", "300/hour"),
        "uploads": _rate("API_UPLOAD_RATE", "60/hour"),
        "lookups": _rate("API_LOOKUP_RATE", "6000/hour"),
        "steering": _rate("API_STEERING_RATE", "1200/hour"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Circuit Atlas API",
    "DESCRIPTION": "Attribution graphs, features, annotations and jobs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ works offline and under our CSP (scripts from 'self' only): Swagger UI from the
    # pinned sidecar package's static files, its set-up script as a separate file (the split
    # view in webapp/urls.py), never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # A name for each choice set that shares its field name ("status") with another.
    "ENUM_NAME_OVERRIDES": {"DiffStatusEnum": "analysis.diff.STATUSES"},
    # The error responses (one JSON shape) on every operation: core/openapi.py.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.openapi.add_error_responses",
    ],
}

# Graph uploads and imports (contract/graph_json.py): bounded before anything is parsed.
GRAPH_UPLOAD_MAX_BYTES = env_int("GRAPH_UPLOAD_MAX_BYTES", 100 * 1024 * 1024, minimum=1024)
GRAPH_MAX_NODES = env_int("GRAPH_MAX_NODES", 100_000, minimum=10)
GRAPH_MAX_LINKS = env_int("GRAPH_MAX_LINKS", 2_000_000, minimum=10)
# Bulk feature lookup: most keys one request may ask for.
FEATURE_LOOKUP_MAX_KEYS = env_int("FEATURE_LOOKUP_MAX_KEYS", 10_000, minimum=1)
# A 10,000-key lookup body is ~1 MB of JSON; uploads go through FILE_UPLOAD_* instead.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024, minimum=1024)

# Content-Security-Policy (django-csp; webapp/security.py), locally too, so the browser tests
# run the pages under it. Scripts and styles come from our own origin only (Vite's bundles); the
# feature page's histogram bars and token shading are inline style attributes; exports are
# blob: URLs and the explorer's images data: URLs; websockets are same-origin ('self').
# Embeds (?embed=1) may be framed by any site; every other page only by ours.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [SELF],
    }
}

# Production hardening: behind a TLS-terminating proxy, HTTPS only.
SECURE_CONTENT_TYPE_NOSNIFF = True
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
# Health checks come from inside the host over plain HTTP (compose, load balancers).
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", PRODUCTION)

LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL.upper()},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "pgserver": {"level": "WARNING"}},
}
