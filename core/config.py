"""Settings: one typed object, built once from defaults, a TOML file, the environment and flags.

`Settings` declares every setting once: its name with its unit (`_s`, `_ms`, `_db`), its type,
its default and its help text (the field's ``help`` metadata). The `SETTINGS` table that feeds
the README's settings section and `callqa settings` is derived from it. `load_settings` is the
one reader; later sources win: defaults < TOML file < environment (`CALLQA_<NAME>`) <
command-line flags. The built object is passed down to whatever needs a setting.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "CALLQA_"
DEFAULT_CONFIG_PATHS = (Path("/etc/callqa/callqa.toml"),)
DEFAULT_DATA_DIR = Path("~/.local/share/callqa")


def _setting(default: Any, help: str, measured: bool = False) -> Any:
    """A setting's declaration. `measured`: it shapes what a capacity benchmark measures, so
    `callqa bench` passes the box's value on to the daemons it starts."""
    return field(default=default, metadata={"help": help, "measured": measured})


AUDIT_LAW_MIN_DAYS = 180
"""The least time the audit log is kept: network logs must be kept at least six months
(Cybersecurity Law of the PRC, article 21)."""

REDACTION_KINDS = ("card", "id_number", "mobile", "landline", "bank_account")
"""The numbers redaction knows (core.rubric.redaction)."""


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the setting and source."""


@dataclass(frozen=True)
class Settings:
    """Every setting, typed; build it with `load_settings`."""

    data_dir: Path = _setting(  # noqa: RUF009 (a Path is immutable)
        DEFAULT_DATA_DIR,
        "Folder for the database, recordings and the assembled model.",
    )
    model: str = _setting(
        "base",
        "Whisper model: `base` (embedded), `tiny.en` (embedded), or a path to a "
        "CTranslate2 Whisper model folder.",
        measured=True,
    )
    asr_device: str = _setting(
        "auto",
        "`auto`, `cpu` or `cuda`. `auto` uses a GPU when CTranslate2 sees one.",
        measured=True,
    )
    asr_compute_type: str = _setting(
        "default",
        "CTranslate2 compute type: `default` (int8 on CPU, float16 on GPU), `int8`, "
        "`int8_float16`, `float16`, `float32`.",
        measured=True,
    )
    asr_verify_margin_nats: float = _setting(
        4.0,
        "A near-missed rubric phrase is put in the transcript when the audio scores the text "
        "with it at most this many nats below the decoded text (0: no such checks).",
        measured=True,
    )
    asr_beam_size: int = _setting(
        3,
        "Beam size for decoding (3: on the corpus, the same findings as 5 for about 10 % less "
        "CPU; 1 and 2 missed findings).",
        measured=True,
    )
    asr_part_beam_size: int = _setting(
        1,
        "Beam size for the parts of a turn still going on (`live_partial_every_s`), decoded "
        "once each and replaced by the whole turn decoded with `asr_beam_size`.",
        measured=True,
    )
    asr_cpu_threads: int = _setting(
        0, "Threads per CTranslate2 replica on CPU (0: all cores).", measured=True
    )
    asr_batch_size: int = _setting(
        0,
        "Most utterances decoded in one call to the model (0: 8 on the CPU, 64 on a GPU).",
        measured=True,
    )
    asr_inter_threads: int = _setting(
        0,
        "Batches the ASR decodes at once; on the CPU each gets `asr_cpu_threads` / this many "
        "threads (0: one per core up to 4 on the CPU, 1 on a GPU).",
        measured=True,
    )
    asr_window_min_s: float = _setting(
        10.0,
        "Shortest encoder window: an utterance is padded with silence to its length plus 1 s, "
        "at least this (30: Whisper's fixed window).",
        measured=True,
    )
    asr_speech_check: bool = _setting(
        True,
        "Second-stage VAD: Silero VAD (onnxruntime) checks every cut utterance before Whisper "
        "and drops those without speech (noise bursts, music, tones, DTMF); counted per call "
        "and in the metrics. See the README's speech check.",
        measured=True,
    )
    asr_speech_threshold: float = _setting(
        0.5,
        "Silero speech probability at or above which a 32 ms window is speech; an utterance "
        "passes the speech check with 8 such windows (0.25 s).",
        measured=True,
    )
    asr_enabled: bool = _setting(
        True,
        "false: front end only (capacity measurement): utterances are cut and their log-mel "
        "features computed, but nothing is transcribed.",
    )
    rubric: str = _setting(
        "default-zh",
        "Rubric used when none is given: a built-in id, a stored id, or a YAML path.",
        measured=True,
    )
    agent_channel: str = _setting(
        "left",
        "Which channel of a stereo recording is the agent: `left` or `right`.",
    )
    min_silence_s: float = _setting(0.5, "Silence that ends an utterance.", measured=True)
    max_utterance_s: float = _setting(
        15.0, "Longest utterance before a forced cut.", measured=True
    )
    sip_host: str = _setting("0.0.0.0", "Address `callqa receive` listens on for SIP and RTP.")
    sip_port: int = _setting(5060, "SIP port for UDP and TCP.")
    sip_transports: str = _setting(
        "udp,tcp", "SIP transports to listen on: `udp`, `tcp` or both."
    )
    sip_allowed_peers: str = _setting(
        "127.0.0.1,::1",
        "SBCs and PBXs allowed to send SIP: addresses or networks (`10.1.0.0/24`), "
        "comma-separated. Others get no answer on UDP and 403 on TCP.",
    )
    rtp_port_first: int = _setting(
        20000, "First port of the RTP range (RTCP on each port + 1)."
    )
    rtp_port_last: int = _setting(29999, "Last port of the RTP range.")
    sip_max_sessions: int = _setting(
        100,
        "Most calls recorded at once; further INVITEs get 503 with Retry-After.",
    )
    disk_min_free_mb: float = _setting(
        1024.0,
        "Free space under the data folder below which new SIP calls get 503 with Retry-After, "
        "and OPTIONS probes 503, so that a dispatcher sends calls elsewhere (0: never).",
    )
    sip_drain_s: float = _setting(
        10.0,
        "On SIGTERM, how long SIP calls in progress may go on to their BYE while new calls and "
        "OPTIONS probes get 503; those still going then end (reason `shutdown`).",
    )
    sip_max_message_bytes: int = _setting(
        65535, "Largest SIP message accepted; larger are dropped."
    )
    sip_max_headers: int = _setting(100, "Most header fields in one SIP message.")
    rtp_idle_timeout_s: float = _setting(
        30.0,
        "A call whose streams carry no RTP this long ends (in case the BYE was lost).",
    )
    rtp_compiled_receive: bool = _setting(
        True,
        "The receive thread reads its RTP sockets in compiled rounds that take each leg's "
        "in-order audio without the interpreter lock (`kernels.rtp_round`); the rest goes "
        "through the Python path. false: every datagram through the Python path.",
        measured=True,
    )
    gil_switch_interval_s: float = _setting(
        0.005,
        "How long a busy Python thread keeps the interpreter lock once another thread asks "
        "for it (`sys.setswitchinterval`; 0.005 is Python's own). The receive thread gives "
        "the lock up at every compiled kernel and system call, and may wait this long to get "
        "it back while another thread runs Python.",
        measured=True,
    )
    agent_patterns: str = _setting(
        "",
        "Which SIPREC participants are agents, comma-separated: extension ranges (`1000-1999`),"
        " domains (`@agents.example.com`), globs (`agent*`), `re:REGEX`, or exact users/AoRs.",
    )
    grpc_host: str = _setting(
        "127.0.0.1",
        "Address `callqa serve` listens on for the gRPC API. Any address but loopback needs a "
        "token (`grpc_token*`) or client certificates (`grpc_tls_client_ca_file`).",
    )
    grpc_port: int = _setting(50051, "Port of the gRPC API (0: any free port).")
    grpc_token: str = _setting(
        "",
        "Bearer token that may call every gRPC method. With any token set, every call must "
        "send the metadata `authorization: Bearer <token>` (16 characters at least).",
    )
    grpc_token_read: str = _setting(
        "",
        "Bearer token of the `read` role: watching alerts and calls, listing and searching "
        "calls, rubrics and routes, capacity (wallboards, agent desktops, `callqa watch`).",
    )
    grpc_token_admin: str = _setting(
        "",
        "Bearer token of the `admin` role: PutRubric, ActivateRubric, SetRubricRoutes, "
        "RunBenchmark.",
    )
    grpc_token_ingest: str = _setting(
        "", "Bearer token of the `ingest` role: StreamAudio and ScoreRecording."
    )
    grpc_token_listen: str = _setting(
        "", "Bearer token of the `listen` role: listening to a live call's audio."
    )
    grpc_tokens_file: str = _setting(
        "",
        "TOML file of secrets holding any of the `grpc_token*` settings (a name may hold a "
        "list of tokens); it must not be readable by group or others (mode 0600).",
    )
    grpc_tls_cert_file: str = _setting(
        "", "PEM certificate for gRPC over TLS (with the key file)."
    )
    grpc_tls_key_file: str = _setting("", "PEM private key for gRPC over TLS.")
    grpc_tls_client_ca_file: str = _setting(
        "",
        "PEM CA certificates: when set (with TLS), every gRPC client must present a "
        "certificate they signed (mutual TLS).",
    )
    grpc_client_ca_file: str = _setting(
        "",
        "For the gRPC clients (`callqa watch`, the admin web): PEM CA that signed the "
        "daemon's certificate; set, or `grpc_tls_cert_file` set, the clients speak TLS "
        "(empty: the system's trusted CAs).",
    )
    grpc_client_cert_file: str = _setting(
        "", "For the gRPC clients: PEM client certificate sent to a daemon asking for one."
    )
    grpc_client_key_file: str = _setting("", "For the gRPC clients: PEM key of that certificate.")
    grpc_workers: int = _setting(64, "Most gRPC calls served at once (streams included).")
    sip_enabled: bool = _setting(True, "Whether `callqa serve` receives SIP/SIPREC calls.")
    mirror_interface: str = _setting(
        "",
        "Network interface carrying mirrored SIP and RTP (a switch's SPAN port) for "
        "`callqa serve` to follow calls on; empty: off. Needs root or CAP_NET_RAW.",
    )
    mirror_agent_side: str = _setting(
        "callee",
        "On mirrored calls, which party is the agent: `callee` (inbound) or `caller`.",
    )
    live_partial_every_s: float = _setting(
        4.0,
        "A turn still going on is transcribed in parts this often, so alerts need not wait "
        "for its end (0: off).",
        measured=True,
    )
    live_early_decode_s: float = _setting(
        0.2,
        "A turn whose speaker has paused this long (after the VAD's hangover) is transcribed "
        "before `min_silence_s` confirms its end, on spare capacity; if the pause does end it, "
        "its transcript is ready that much sooner (0: off). See the README's early decodes.",
        measured=True,
    )
    live_part_load_limit: float = _setting(
        0.7,
        "Parts of turns in progress are decoded only while the ASR workers were busy at most "
        "this share of the last 10 s (1: whatever the load), so that a loaded box decodes "
        "each second of speech once.",
        measured=True,
    )
    alert_deadline_s: float = _setting(
        2.0,
        "An alert published later than this after the speech that caused it is marked late.",
        measured=True,
    )
    asr_queue_memory_s: float = _setting(
        600.0,
        "Seconds of queued utterance audio held in memory; beyond it the queue goes to disk.",
    )
    shutdown_grace_s: float = _setting(
        30.0,
        "On SIGTERM, how long to finish scoring ended calls before stopping; the rest are "
        "scored at the next start.",
    )
    rubric_routes: str = _setting(
        "",
        "Rubric per agent, skill group or team, comma-separated `KIND:VALUE=RUBRIC` "
        "(e.g. `team:sales=sales-zh,skill:billing=billing-zh`); others get `rubric`. Routes "
        "set in the admin web (stored in the database) win for the same key; these apply "
        "where none is stored.",
    )
    log_level: str = _setting("info", "Log level: `debug`, `info`, `warning` or `error`.")
    log_file: str = _setting(
        "", "Also write the log to this file (empty: standard error only)."
    )
    log_format: str = _setting(
        "plain",
        "`plain` (one line of text per record) or `json` (one JSON object per line, with "
        "`call_id`, `leg` and `stage` fields where known, for a log shipper).",
    )
    metrics_host: str = _setting(
        "127.0.0.1", "Address the Prometheus metrics endpoint of `callqa serve` listens on."
    )
    metrics_port: int = _setting(
        9464, "Port of the Prometheus metrics endpoint (`/metrics`); 0 turns it off."
    )
    default_agent_side: str = _setting(
        "callee",
        "Who the agent is when no participant matches `agent_patterns`: `callee`, `caller`, "
        "`first` or `second` stream.",
    )
    retention_recordings_days: int = _setting(
        0,
        "Recordings of calls that started this many days ago are deleted (0: kept for ever). "
        "Calls under review or appeal are kept.",
    )
    retention_transcripts_days: int = _setting(
        0,
        "Transcripts (text, search index, phrase checks, findings' quoted words) of calls that "
        "started this many days ago are deleted (0: kept for ever).",
    )
    retention_scores_days: int = _setting(
        0,
        "Calls that started this many days ago are deleted whole: score, findings, transcript "
        "and recording (0: kept for ever).",
    )
    retention_audit_days: int = _setting(
        AUDIT_LAW_MIN_DAYS,
        "Admin web audit log entries older than this many days are pruned; at least "
        f"{AUDIT_LAW_MIN_DAYS} (the six months network logs must be kept), or 0: kept for ever.",
    )
    retention_run_hour: int = _setting(
        3, "Hour of the day (local time, 0-23) at which `callqa serve` applies retention."
    )
    redaction_kinds: str = _setting(
        "card,id_number,mobile,landline,bank_account",
        "Numbers masked in transcripts, findings, events and exports, and silenced in the "
        "recording, comma-separated (`none`: none); a rubric's `redaction.kinds` overrides it.",
    )
    redaction_carry_s: float = _setting(
        8.0,
        "A number split between two utterances of one speaker is found when the later one "
        "starts at most this long after the earlier one ends.",
    )
    redaction_margin_s: float = _setting(
        0.3, "Silence added before and after the utterances that held a masked number."
    )
    redaction_keep_original: bool = _setting(
        False,
        "Keep the unredacted recording beside the redacted one (`originals/`, mode 0600); "
        "reading it is audit-logged and needs the admin web's original-audio permission.",
    )
    admin_host: str = _setting(
        "127.0.0.1", "Address the admin web (`callqa admin serve`) listens on."
    )
    admin_port: int = _setting(8080, "Port of the admin web.")
    admin_daemon_address: str = _setting(
        "",
        "Where the admin web reaches the daemon's gRPC API, `HOST:PORT` (empty: "
        "127.0.0.1 and `grpc_port`).",
    )
    admin_session_idle_s: float = _setting(
        1800.0,
        "An admin web session unused this long is logged out.",
    )
    admin_lockout_failures: int = _setting(
        5,
        "Failed admin web logins in a row that lock the account for `admin_lockout_s`.",
    )
    admin_lockout_s: float = _setting(900.0, "How long a locked admin web account stays locked.")
    admin_tls: bool = _setting(
        False,
        "true when the admin web is reached over HTTPS (a TLS proxy in front): session "
        "cookies are then marked Secure.",
    )

    def __post_init__(self) -> None:
        if self.agent_channel not in ("left", "right"):
            raise ConfigError("setting 'agent_channel' must be 'left' or 'right'")
        if self.asr_device not in ("auto", "cpu", "cuda"):
            raise ConfigError("setting 'asr_device' must be 'auto', 'cpu' or 'cuda'")
        if not 0.0 < self.asr_speech_threshold < 1.0:
            raise ConfigError("setting 'asr_speech_threshold' must lie between 0 and 1")
        if not 0.0 <= self.live_part_load_limit <= 1.0:
            raise ConfigError("setting 'live_part_load_limit' must lie between 0 and 1")
        if not 0.0 <= self.live_early_decode_s < self.min_silence_s:
            raise ConfigError(
                "setting 'live_early_decode_s' must be 0 (off) or more, and less than "
                f"'min_silence_s' ({self.min_silence_s})"
            )
        for name in ("asr_beam_size", "asr_part_beam_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"setting {name!r} must be 1 (greedy) or more")
        if self.log_format not in ("plain", "json"):
            raise ConfigError("setting 'log_format' must be 'plain' or 'json'")
        if not 0.0 < self.gil_switch_interval_s <= 0.1:
            raise ConfigError("setting 'gil_switch_interval_s' must lie in (0, 0.1] seconds")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError("setting 'metrics_port' must be a port number, or 0 (off)")
        self._check_retention()
        bad = set(_names(self.redaction_kinds)) - set(REDACTION_KINDS) - {"none"}
        if bad:
            raise ConfigError(f"setting 'redaction_kinds': unknown kind {sorted(bad)[0]!r} "
                              f"(kinds: {', '.join(REDACTION_KINDS)}, or none)")

    def _check_retention(self) -> None:
        for name in ("retention_recordings_days", "retention_transcripts_days",
                     "retention_scores_days", "retention_audit_days"):
            if getattr(self, name) < 0:
                raise ConfigError(f"setting {name!r} must be days, or 0 (kept for ever)")
        if 0 < self.retention_audit_days < AUDIT_LAW_MIN_DAYS:
            raise ConfigError(
                f"setting 'retention_audit_days' is {self.retention_audit_days}: the audit log "
                f"must be kept at least {AUDIT_LAW_MIN_DAYS} days (network logs, six months); "
                f"use {AUDIT_LAW_MIN_DAYS} or more, or 0 to keep it for ever"
            )
        if not 0 <= self.retention_run_hour <= 23:
            raise ConfigError("setting 'retention_run_hour' must be an hour from 0 to 23")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "callqa.db"

    def replace(self, **changes: Any) -> Settings:
        """These settings with `changes` (flags: typed like the rest; None: left as is)."""
        typed = {}
        for key, value in changes.items():
            if value is None:
                continue
            if key not in _BY_NAME:
                raise ConfigError(f"unknown setting {key!r}")
            typed[key] = _coerce(key, value, f"--{key.replace('_', '-')}")
        return dataclasses.replace(self, **typed)

    def as_dict(self) -> dict[str, Any]:
        """Every setting's typed value by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def as_text(self) -> dict[str, str]:
        """Every setting's value as its environment variable would spell it, by name."""
        return {name: _text(value) for name, value in self.as_dict().items()}

    def measured(self) -> dict[str, str]:
        """The settings declared `measured`, as text: what `callqa bench` passes on."""
        text = self.as_text()
        return {f.name: text[f.name] for f in dataclasses.fields(self) if f.metadata["measured"]}

    def to_env(self, names: tuple[str, ...] | None = None) -> dict[str, str]:
        """``CALLQA_<NAME>`` variables that give a child process these settings (or `names`)."""
        text = self.as_text()
        wanted = tuple(text) if names is None else names
        return {ENV_PREFIX + n.upper(): text[n] for n in wanted}


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, f.default, f.metadata["help"]) for f in dataclasses.fields(Settings)
)
"""The settings table, derived from `Settings` (README section, `callqa settings`)."""

_BY_NAME = {s.name: s for s in SETTINGS}


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


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
        if isinstance(default, Path):
            return Path(str(value)).expanduser()
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{source}: setting {name!r} must be a {type(default).__name__}, got {value!r}"
        ) from exc


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The settings from defaults < TOML file < environment < overrides (flags; None: unset).

    The one reader of settings: everything else is handed the object it returns.
    """
    values: dict[str, Any] = {"data_dir": DEFAULT_DATA_DIR.expanduser()}
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
    return Settings(**values)


def settings_file(
    config_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The settings file `load_settings` reads: the one given, else ``CALLQA_CONFIG``, else
    the first of `DEFAULT_CONFIG_PATHS` that exists; None when there is none."""
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
