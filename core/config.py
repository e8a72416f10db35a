"""Settings: one documented table, read from defaults, a TOML file, the environment and flags.

Each setting has a name with its unit (`_s`, `_ms`, `_db`), a default and a help text. The
same table feeds the README's settings section (a test checks that every setting is
documented there). Later sources win: defaults < TOML file < environment (`CALLQA_<NAME>`)
< command-line flags.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "CALLQA_"
DEFAULT_CONFIG_PATHS = (Path("/etc/callqa/callqa.toml"),)


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "data_dir",
        "~/.local/share/callqa",
        "Folder for the database, recordings and the assembled model.",
    ),
    Setting(
        "model",
        "base",
        "Whisper model: `base` (embedded), `tiny.en` (embedded), or a path to a "
        "CTranslate2 Whisper model folder.",
    ),
    Setting(
        "asr_device",
        "auto",
        "`auto`, `cpu` or `cuda`. `auto` uses a GPU when CTranslate2 sees one.",
    ),
    Setting(
        "asr_compute_type",
        "default",
        "CTranslate2 compute type: `default` (int8 on CPU, float16 on GPU), `int8`, "
        "`int8_float16`, `float16`, `float32`.",
    ),
    Setting(
        "asr_beam_size",
        3,
        "Beam size for decoding (3: on the corpus, the same findings as 5 for about 10 % less "
        "CPU; 1 and 2 missed findings).",
    ),
    Setting("asr_cpu_threads", 0, "Threads per CTranslate2 replica on CPU (0: all cores)."),
    Setting(
        "asr_batch_size",
        0,
        "Most utterances decoded in one call to the model (0: 8 on the CPU, 64 on a GPU).",
    ),
    Setting(
        "asr_inter_threads",
        0,
        "Batches the ASR decodes at once; on the CPU each gets `asr_cpu_threads` / this many "
        "threads (0: one per core up to 4 on the CPU, 1 on a GPU).",
    ),
    Setting(
        "asr_window_min_s",
        10.0,
        "Shortest encoder window: an utterance is padded with silence to its length plus 1 s, "
        "at least this (30: Whisper's fixed window).",
    ),
    Setting(
        "asr_enabled",
        True,
        "false: front end only (capacity measurement): utterances are cut and their log-mel "
        "features computed, but nothing is transcribed.",
    ),
    Setting(
        "rubric",
        "default-zh",
        "Rubric used when none is given: a built-in id, a stored id, or a YAML path.",
    ),
    Setting(
        "agent_channel",
        "left",
        "Which channel of a stereo recording is the agent: `left` or `right`.",
    ),
    Setting("min_silence_s", 0.5, "Silence that ends an utterance."),
    Setting("max_utterance_s", 15.0, "Longest utterance before a forced cut."),
    Setting("sip_host", "0.0.0.0", "Address `callqa receive` listens on for SIP and RTP."),
    Setting("sip_port", 5060, "SIP port for UDP and TCP."),
    Setting("sip_transports", "udp,tcp", "SIP transports to listen on: `udp`, `tcp` or both."),
    Setting(
        "sip_allowed_peers",
        "127.0.0.1,::1",
        "SBCs and PBXs allowed to send SIP: addresses or networks (`10.1.0.0/24`), "
        "comma-separated. Others get no answer on UDP and 403 on TCP.",
    ),
    Setting("rtp_port_first", 20000, "First port of the RTP range (RTCP on each port + 1)."),
    Setting("rtp_port_last", 29999, "Last port of the RTP range."),
    Setting(
        "sip_max_sessions",
        100,
        "Most calls recorded at once; further INVITEs get 503 with Retry-After.",
    ),
    Setting("sip_max_message_bytes", 65535, "Largest SIP message accepted; larger are dropped."),
    Setting("sip_max_headers", 100, "Most header fields in one SIP message."),
    Setting(
        "rtp_idle_timeout_s",
        30.0,
        "A call whose streams carry no RTP this long ends (in case the BYE was lost).",
    ),
    Setting(
        "agent_patterns",
        "",
        "Which SIPREC participants are agents, comma-separated: extension ranges (`1000-1999`),"
        " domains (`@agents.example.com`), globs (`agent*`), `re:REGEX`, or exact users/AoRs.",
    ),
    Setting("grpc_host", "0.0.0.0", "Address `callqa serve` listens on for the gRPC API."),
    Setting("grpc_port", 50051, "Port of the gRPC API (0: any free port)."),
    Setting(
        "grpc_token",
        "",
        "When set, every gRPC call must send the metadata `authorization: Bearer <token>`.",
    ),
    Setting("grpc_tls_cert_file", "", "PEM certificate for gRPC over TLS (with the key file)."),
    Setting("grpc_tls_key_file", "", "PEM private key for gRPC over TLS."),
    Setting("grpc_workers", 64, "Most gRPC calls served at once (streams included)."),
    Setting("sip_enabled", True, "Whether `callqa serve` receives SIP/SIPREC calls."),
    Setting(
        "mirror_interface",
        "",
        "Network interface carrying mirrored SIP and RTP (a switch's SPAN port) for "
        "`callqa serve` to follow calls on; empty: off. Needs root or CAP_NET_RAW.",
    ),
    Setting(
        "mirror_agent_side",
        "callee",
        "On mirrored calls, which party is the agent: `callee` (inbound) or `caller`.",
    ),
    Setting(
        "live_partial_every_s",
        4.0,
        "A turn still going on is transcribed in parts this often, so alerts need not wait "
        "for its end (0: off).",
    ),
    Setting(
        "alert_deadline_s",
        2.0,
        "An alert published later than this after the speech that caused it is marked late.",
    ),
    Setting(
        "asr_queue_memory_s",
        600.0,
        "Seconds of queued utterance audio held in memory; beyond it the queue goes to disk.",
    ),
    Setting(
        "shutdown_grace_s",
        30.0,
        "On SIGTERM, how long to finish scoring ended calls before stopping; the rest are "
        "scored at the next start.",
    ),
    Setting(
        "rubric_routes",
        "",
        "Rubric per agent, skill group or team, comma-separated `KIND:VALUE=RUBRIC` "
        "(e.g. `team:sales=sales-zh,skill:billing=billing-zh`); others get `rubric`. Routes "
        "set in the admin web (stored in the database) win for the same key; these apply "
        "where none is stored.",
    ),
    Setting("log_level", "info", "Log level: `debug`, `info`, `warning` or `error`."),
    Setting("log_file", "", "Also write the log to this file (empty: standard error only)."),
    Setting(
        "default_agent_side",
        "callee",
        "Who the agent is when no participant matches `agent_patterns`: `callee`, `caller`, "
        "`first` or `second` stream.",
    ),
    Setting("admin_host", "127.0.0.1", "Address the admin web (`callqa admin serve`) listens on."),
    Setting("admin_port", 8080, "Port of the admin web."),
    Setting(
        "admin_daemon_address",
        "",
        "Where the admin web reaches the daemon's gRPC API, `HOST:PORT` (empty: "
        "127.0.0.1 and `grpc_port`).",
    ),
    Setting(
        "admin_session_idle_s",
        1800.0,
        "An admin web session unused this long is logged out.",
    ),
    Setting(
        "admin_lockout_failures",
        5,
        "Failed admin web logins in a row that lock the account for `admin_lockout_s`.",
    ),
    Setting("admin_lockout_s", 900.0, "How long a locked admin web account stays locked."),
    Setting(
        "admin_tls",
        False,
        "true when the admin web is reached over HTTPS (a TLS proxy in front): session "
        "cookies are then marked Secure.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Config:
    data_dir: Path
    model: str
    asr_device: str
    asr_compute_type: str
    asr_beam_size: int
    asr_cpu_threads: int
    asr_batch_size: int
    asr_inter_threads: int
    asr_window_min_s: float
    asr_enabled: bool
    rubric: str
    agent_channel: str
    min_silence_s: float
    max_utterance_s: float

    @property
    def db_path(self) -> Path:
        return self.data_dir / "callqa.db"


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the setting and source."""


def _coerce(name: str, value: Any, source: str) -> Any:
    default = _BY_NAME[name].default
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{source}: setting {name!r} must be a {type(default).__name__}, got {value!r}"
        ) from exc


def load_config(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Build the configuration from defaults, a TOML file, the environment and overrides."""
    values = load_values(config_file, overrides, environ)
    if values["agent_channel"] not in ("left", "right"):
        raise ConfigError("setting 'agent_channel' must be 'left' or 'right'")
    if values["asr_device"] not in ("auto", "cpu", "cuda"):
        raise ConfigError("setting 'asr_device' must be 'auto', 'cpu' or 'cuda'")
    values["data_dir"] = Path(str(values["data_dir"])).expanduser()
    names = {f.name for f in fields(Config)}
    return Config(**{k: v for k, v in values.items() if k in names})


def load_values(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Every setting's value, typed, from defaults < TOML file < environment < overrides.

    Packages with settings of their own (the SIP receiver) read them from here, so that all
    settings come from the same sources in the same order.
    """
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    env = os.environ if environ is None else environ

    path = settings_file(config_file, env)
    if path is not None:
        try:
            table = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
        for key, value in table.items():
            if key not in _BY_NAME:
                raise ConfigError(f"config file {path}: unknown setting {key!r}")
            values[key] = _coerce(key, value, f"config file {path}")

    for setting in SETTINGS:
        raw = env.get(ENV_PREFIX + setting.name.upper())
        if raw is not None:
            values[setting.name] = _coerce(setting.name, raw, ENV_PREFIX + setting.name.upper())

    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in _BY_NAME:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _coerce(key, value, f"--{key.replace('_', '-')}")
    return values


def settings_file(
    config_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The settings file `load_values` reads: the one given, else ``CALLQA_CONFIG``, else the
    first of `DEFAULT_CONFIG_PATHS` that exists; None when there is none."""
    env = os.environ if environ is None else environ
    if config_file is not None:
        return Path(config_file)
    if env.get(ENV_PREFIX + "CONFIG"):
        return Path(env[ENV_PREFIX + "CONFIG"])
    return next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)


def settings_markdown() -> str:
    """The settings table as Markdown, as printed by `callqa settings`."""
    lines = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for s in SETTINGS:
        lines.append(f"| `{s.name}` | `{s.default}` | {s.help} |")
    return "\n".join(lines)
