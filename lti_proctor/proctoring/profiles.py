"""Proctoring profiles: load the YAML files in PROCTOR_PROFILES_DIR, check them, fill them in full.

The settings reference below is written from trustexam-api.md §4.7. Every loaded profile carries
the complete, explicit proctoring_settings object (U12: never rely on the service's defaults).
This module owns profile files only; it knows no LTI and touches no database.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from flask import Flask

from lti_proctor.proctoring.errors import ProfileError, UnknownProfileError
from lti_proctor.proctoring.types import Profile

EXTENSION_KEY = "lti_proctor_profiles"
Kind = Literal["bool", "flag", "int", "number", "string", "choice", "mapping"]


@dataclass(frozen=True)
class SettingSpec:
    """One proctoring_settings key: its type and the value a profile gets when it says nothing."""

    kind: Kind
    default: Any = None  # None: optional, sent only when a profile sets it
    choices: tuple[str, ...] = ()


def _b(default: bool) -> SettingSpec:
    return SettingSpec("bool", default)


def _f(default: int) -> SettingSpec:
    return SettingSpec("flag", default)


def _ms(default: int | None) -> SettingSpec:
    return SettingSpec("int", default)  # durations and intervals, in milliseconds


def _n(default: float) -> SettingSpec:
    return SettingSpec("number", default)


_FACE_LANDMARKER_CATEGORIES = {
    "eyeLookInLeft": {"action": "eye-left", "score": 0.45},
    "eyeLookInRight": {"action": "eye-right", "score": 0.45},
    "eyeLookUpLeft": {"action": "eye-up", "score": 0.4},
    "eyeLookUpRight": {"action": "eye-up", "score": 0.4},
    "eyeLookDownLeft": {"action": "eye-down", "score": 0.4},
    "eyeLookDownRight": {"action": "eye-down", "score": 0.4},
}
_OBJECT_DETECT_CATEGORIES = {
    "cell phone": {"action": "object-detected", "score": 0.4, "count": 1},
    "remote": {"action": "object-detected", "score": 0.4, "count": 1},
    "laptop": {"action": "object-detected", "score": 0.4, "count": 1},
    "person": {"action": "head-many", "score": 0.7, "count": 2},
}

# Defaults: the vendor admin UI's defaults (S5 DEF_SETTINGS), overridden by the contract's
# "standard" example body (§4.3), which is the base every profile starts from.
SETTINGS_REFERENCE: dict[str, SettingSpec] = {
    "browser_type": SettingSpec("choice", "*", ("*", "Chrome", "Safari", "Edge", "Yandex")),
    "check_env": _b(True),
    "main_camera_record": _b(True),
    "main_camera_upload": _b(False),
    "main_camera_blackhole": _b(False),
    "second_camera_record": _b(False),
    "second_camera_upload": _b(False),
    "second_camera_blackhole": _b(False),
    "screen_share_record": _b(True),
    "screen_share_upload": _b(False),
    "screen_share_blackhole": _b(False),
    "second_microphone_record": _b(False),
    "second_microphone_upload": _b(False),
    "second_microphone_blackhole": _b(False),
    "second_microphone_label": SettingSpec(
        "string",
        "RubleffTechnology_UMdesktop|USB PnP Sound Device|USB PnP Sound Device"
        "|USB Audio Device|\\\\.*USB Audio Device",
    ),
    "photo_head_identity": _f(1),
    "video_head_identity": _f(0),
    "id_verification": _b(False),
    "noise_detector": _f(1),
    "speech_detector": _f(1),
    "displays_check": _f(1),
    "hdcp_check": _f(0),
    "content_protect": _f(1),
    "fullscreen_mode": _f(0),
    "extension_detector": _f(1),
    "focus_detector": _f(1),
    "read_clipboard": _f(0),
    "head_tracking_client": _b(True),
    "head_tracking_server": _b(False),
    "head_tracking_server_post": _b(False),
    "head_tracking_server_realtime": _b(False),
    "head_recognize_interval": _ms(1500),
    "head_compare_interval": _ms(4000),
    "head_compare_euclidean_distance": _n(0.5),
    "head_x_sensitivity": _n(50),
    "head_y_sensitivity": _n(40),
    "head_depth_sensitivity": _n(12),
    "head_center_area_size_x": _n(40),
    "head_center_area_size_y": _n(30),
    "head_position_confidence": _n(0.5),
    "head_position_probability": _n(0.96),
    "head_position_interval": _ms(1200),
    "head_tolerance_seconds": _ms(1500),  # milliseconds despite the name
    "face_landmarker": _b(False),
    "face_landmarker_interval": _ms(700),
    "face_landmarker_threshold": _n(0.5),
    "face_landmarker_categories": SettingSpec("mapping", _FACE_LANDMARKER_CATEGORIES),
    "object_detect": _f(0),
    "object_detect_interval": _ms(2000),
    "object_detect_threshold": _n(0.5),
    "object_detect_categories": SettingSpec("mapping", _OBJECT_DETECT_CATEGORIES),
    "noise_sensitivity": _n(10),
    "noise_tolerance_frames": SettingSpec("int", 3),
    "noise_tolerance_seconds": _ms(1500),
    "speech_tolerance_seconds": _ms(1500),
    "speech_min_frames_count": SettingSpec("int", 5),
    "speech_pre_pad_frames": SettingSpec("int", 10),
    "speech_positive_threshold": _n(0.9),
    "quite_frames_count": SettingSpec("int", 30),  # sic, the service's spelling
    "mute_frames_count": SettingSpec("int", 30),
    "silent_tolerance_seconds": _ms(1500),
    "focus_tolerance_seconds": _ms(1500),
    "rtc_connection_timeout": _ms(None),  # U14: unknown default, omitted unless set
    "facemodel_init_timeout": _ms(None),
    "proctoring_mobile_restrict": _f(1),
    "proctoring_fallback_allow": _f(0),
}

REQUIRED_SETTINGS = frozenset(k for k, s in SETTINGS_REFERENCE.items() if s.default is not None)
DEVICE_PAIRS = ("main_camera", "second_camera", "screen_share", "second_microphone")
LEGACY_KEYS = {
    "camera_record": "main_camera_record",
    "two_camera": "second_camera_record",
    "screen_record": "screen_share_record",
    "head_identity": "photo_head_identity",
    "head_tracking": "head_tracking_client / head_tracking_server",
    "display_checks": "displays_check",
    "hdcp_checks": "hdcp_check",
    "proctoring": "the individual proctoring_settings keys",
}
PROFILE_KEYS = {
    "application",
    "start_proof",
    "review_threshold",
    "score_maximum",
    "gradebook_score",
    "description",
    "max_started_minutes",
    "max_finished_minutes",
    "protector_text_color",
    "proctoring_settings",
}
_NAME = re.compile(r"^[a-z0-9_]+$")
_COLOR = re.compile(r"^(#[0-9a-fA-F]{3,8}|[a-zA-Z]+|(rgb|hsl)a?\([0-9.,%\s]+\))$")


def load_profiles(directory: str | Path) -> dict[str, Profile]:
    """Read, check and complete every *.yaml / *.yml profile in directory, keyed by file stem."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ProfileError(str(folder), "(directory)", "profile directory not found")
    profiles: dict[str, Profile] = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        name = path.stem
        if not _NAME.match(name):
            raise ProfileError(str(path), "(file name)", "use lowercase letters, digits and _")
        if name in profiles:
            raise ProfileError(str(path), "(file name)", f"profile {name!r} is defined twice")
        profiles[name] = load_profile(path)
    if not profiles:
        raise ProfileError(str(folder), "(directory)", "no *.yaml profile files found")
    return profiles


def load_profile(path: Path) -> Profile:
    """Read one profile file; raise ProfileError naming the file and the key on any problem."""
    where = str(path)
    try:
        stat = path.stat()
        data = copy.deepcopy(_parse_yaml(where, stat.st_mtime_ns, stat.st_size))
    except yaml.YAMLError as exc:
        raise ProfileError(where, "(yaml)", f"not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(where, "(file)", "a profile must be a mapping of keys to values")
    for key in data:
        if key not in PROFILE_KEYS:
            raise ProfileError(where, str(key), f"unknown key (allowed: {sorted(PROFILE_KEYS)})")
    return Profile(
        name=path.stem,
        proctoring_settings=complete_settings(where, data.get("proctoring_settings", {})),
        application=_choice(where, data, "application", ("browser", "tray", "desktop"), "browser"),
        start_proof=_choice(where, data, "start_proof", ("webhook", "sdk"), "webhook"),
        protector_text_color=_color(where, data.get("protector_text_color", "#1f2937")),
        review_threshold=_int_in(where, data, "review_threshold", 50, 0, 100),
        score_maximum=_int_in(where, data, "score_maximum", 100, 1, 100_000),
        gradebook_score=_choice(where, data, "gradebook_score", ("none", "integrity"), "none"),
        description=_description(where, data.get("description", "")),
        max_started_minutes=_int_in(where, data, "max_started_minutes", 360, 1, 100_000),
        max_finished_minutes=_int_in(where, data, "max_finished_minutes", 1560, 1, 100_000),
    )


@lru_cache(maxsize=64)
def _parse_yaml(path: str, mtime_ns: int, size: int) -> Any:
    """A file's YAML, parsed once per version of the file (path, mtime, size): every app built in
    one process (the test suite builds hundreds) reads the same profiles; callers get a copy."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def complete_settings(where: str, settings: object) -> dict[str, Any]:
    """Check a proctoring_settings mapping and return it filled in full from the reference."""
    if not isinstance(settings, dict):
        raise ProfileError(where, "proctoring_settings", "must be a mapping of setting: value")
    checked = {str(key): _check_setting(where, str(key), value) for key, value in settings.items()}
    full = {
        key: copy.deepcopy(spec.default)
        for key, spec in SETTINGS_REFERENCE.items()
        if spec.default is not None
    }
    full.update(checked)
    _check_combinations(where, full)
    return full


def _check_setting(where: str, key: str, value: object) -> Any:
    spec = SETTINGS_REFERENCE.get(key)
    if spec is None:
        if key in LEGACY_KEYS:
            raise ProfileError(where, key, f"legacy key, use {LEGACY_KEYS[key]} instead")
        raise ProfileError(where, key, "unknown proctoring setting")
    checked = _coerce(spec, value)
    if checked is None:
        raise ProfileError(where, key, f"expected {_describe(spec)}, got {value!r}")
    return checked


def _coerce(spec: SettingSpec, value: object) -> Any:
    """The value in the reference's canonical form, or None when it has the wrong type."""
    is_bool = isinstance(value, bool)
    if spec.kind in ("bool", "flag"):
        # The service takes true/false and 0/1 alike (§4.3); we send the reference's form.
        if not is_bool and value not in (0, 1):
            return None
        return bool(value) if spec.kind == "bool" else int(bool(value))
    if spec.kind == "int":
        ok = isinstance(value, int) and not is_bool and value >= 0
        return value if ok else None
    if spec.kind == "number":
        ok = isinstance(value, int | float) and not is_bool and value >= 0
        return value if ok else None
    if spec.kind == "string":
        return value if isinstance(value, str) else None
    if spec.kind == "choice":
        return value if value in spec.choices else None
    ok = isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())
    return copy.deepcopy(value) if ok else None


def _describe(spec: SettingSpec) -> str:
    return {
        "bool": "true or false",
        "flag": "0 or 1",
        "int": "a whole number >= 0 (milliseconds for times)",
        "number": "a number >= 0",
        "string": "a string",
        "choice": f"one of {list(spec.choices)}",
        "mapping": "a mapping of name: {settings}",
    }[spec.kind]


def _check_combinations(where: str, full: Mapping[str, Any]) -> None:
    for device in DEVICE_PAIRS:
        if full[f"{device}_record"] and full[f"{device}_upload"]:
            raise ProfileError(
                where,
                f"{device}_upload",
                f"{device}_record and {device}_upload cannot both be true "
                "(record = streaming, upload = local recording; pick one)",
            )
    streaming = full["main_camera_record"] and not full["main_camera_upload"]
    if full["head_tracking_server_realtime"] and not streaming:
        raise ProfileError(
            where,
            "head_tracking_server_realtime",
            "needs the main camera in streaming mode (main_camera_record: true)",
        )


def _choice(
    where: str, data: Mapping[str, Any], key: str, allowed: tuple[str, ...], default: str
) -> Any:
    value = data.get(key, default)
    if value not in allowed:
        raise ProfileError(where, key, f"expected one of {list(allowed)}, got {value!r}")
    return value


def _int_in(
    where: str, data: Mapping[str, Any], key: str, default: int, low: int, high: int
) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProfileError(where, key, f"expected a whole number from {low} to {high}")
    return value


def _description(where: str, value: object) -> str:
    if not isinstance(value, str) or "\n" in value.strip() or len(value) > 200:
        raise ProfileError(where, "description", "expected one line of text (at most 200 chars)")
    return value.strip()


def _color(where: str, value: object) -> str:
    if not isinstance(value, str) or not _COLOR.match(value.strip()):
        raise ProfileError(where, "protector_text_color", "expected a CSS colour such as #1f2937")
    return value.strip()


def resolve_profile(
    profiles: Mapping[str, Profile],
    *,
    custom_name: str | None,
    deployment_default: str | None,
    fallback: str = "standard",
) -> Profile:
    """Pick the exam's profile: LTI custom parameter, else the deployment default, else fallback."""
    for candidate in (custom_name, deployment_default, fallback):
        name = (candidate or "").strip().lower()
        if not name:
            continue
        profile = profiles.get(name)
        if profile is None:
            # An explicit but unknown name is an error, never a silent downgrade.
            raise UnknownProfileError(name, tuple(sorted(profiles)))
        return profile
    raise UnknownProfileError("", tuple(sorted(profiles)))


def init_app(app: Flask) -> None:
    """Load every profile at start-up so a broken file stops the app with a clear error."""
    profiles = load_profiles(app.config["PROCTOR_PROFILES_DIR"])
    default = str(app.config.get("PROCTOR_DEFAULT_PROFILE") or "standard")
    if default not in profiles:
        raise ProfileError(
            str(app.config["PROCTOR_PROFILES_DIR"]),
            "PROCTOR_DEFAULT_PROFILE",
            f"default profile {default!r} has no file",
        )
    app.extensions[EXTENSION_KEY] = profiles


def get_profiles(app: Flask) -> Mapping[str, Profile]:
    """The profiles loaded at start-up."""
    profiles: Mapping[str, Profile] = app.extensions[EXTENSION_KEY]
    return profiles
