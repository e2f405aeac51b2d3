"""Profile files: the shipped ones load complete; broken ones stop start-up naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from lti_proctor import create_app
from lti_proctor.proctoring.errors import ProfileError, UnknownProfileError
from lti_proctor.proctoring.profiles import (
    REQUIRED_SETTINGS,
    SETTINGS_REFERENCE,
    get_profiles,
    init_app,
    load_profiles,
    resolve_profile,
)
from lti_proctor.proctoring.types import Profile

SHIPPED = Path(__file__).resolve().parents[2] / "configs" / "profiles"


@pytest.fixture(scope="module")
def shipped() -> dict[str, Profile]:
    return load_profiles(SHIPPED)


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_profiles_load_with_complete_explicit_settings() -> None:
    profiles = load_profiles(SHIPPED)
    assert {"low_stakes", "standard", "high_stakes"} <= set(profiles)
    for profile in profiles.values():
        assert set(profile.proctoring_settings) >= REQUIRED_SETTINGS
        assert set(profile.proctoring_settings) <= set(SETTINGS_REFERENCE)
        assert profile.proctoring_settings["content_protect"] == 1


def test_shipped_profiles_follow_the_presets() -> None:
    profiles = load_profiles(SHIPPED)
    low, std, high = profiles["low_stakes"], profiles["standard"], profiles["high_stakes"]
    assert (low.start_proof, std.start_proof, high.start_proof) == ("sdk", "webhook", "webhook")
    assert low.proctoring_settings["proctoring_fallback_allow"] == 1
    assert high.proctoring_settings["proctoring_fallback_allow"] == 0
    assert std.proctoring_settings["proctoring_fallback_allow"] == 0
    assert low.proctoring_settings["screen_share_record"] is False
    assert low.proctoring_settings["speech_detector"] == 0
    for key, value in {
        "second_camera_record": True,
        "video_head_identity": 1,
        "id_verification": True,
        "object_detect": 1,
        "face_landmarker": True,
        "fullscreen_mode": 1,
        "hdcp_check": 1,
    }.items():
        assert high.proctoring_settings[key] == value, key
    assert high.application in ("tray", "desktop")


def test_unspecified_settings_come_from_the_standard_base(tmp_path: Path) -> None:
    write(tmp_path, "tiny.yaml", "proctoring_settings:\n  content_protect: 0\n")
    profile = load_profiles(tmp_path)["tiny"]
    std = load_profiles(SHIPPED)["standard"]
    assert profile.proctoring_settings["content_protect"] == 0
    assert {k: v for k, v in profile.proctoring_settings.items() if k != "content_protect"} == {
        k: v for k, v in std.proctoring_settings.items() if k != "content_protect"
    }
    assert (profile.application, profile.start_proof, profile.review_threshold) == (
        "browser",
        "webhook",
        50,
    )


def test_settings_given_as_true_or_1_are_sent_in_the_reference_form(tmp_path: Path) -> None:
    write(
        tmp_path,
        "mixed.yaml",
        "proctoring_settings:\n  content_protect: true\n  check_env: 1\n",
    )
    settings = load_profiles(tmp_path)["mixed"].proctoring_settings
    assert settings["content_protect"] == 1 and type(settings["content_protect"]) is int
    assert settings["check_env"] is True


def test_optional_settings_are_sent_only_when_set(tmp_path: Path) -> None:
    write(tmp_path, "rtc.yaml", "proctoring_settings:\n  rtc_connection_timeout: 20000\n")
    write(tmp_path, "plain.yaml", "application: browser\n")
    profiles = load_profiles(tmp_path)
    assert profiles["rtc"].proctoring_settings["rtc_connection_timeout"] == 20000
    assert "rtc_connection_timeout" not in profiles["plain"].proctoring_settings


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("proctoring_settings:\n  camera_sharpness: 1\n", "camera_sharpness", "unknown"),
        ("proctoring_settings:\n  camera_record: true\n", "camera_record", "legacy"),
        ("proctoring_settings:\n  head_tracking: server\n", "head_tracking", "legacy"),
        ("proctoring_settings:\n  display_checks: 1\n", "display_checks", "displays_check"),
        ("proctoring_settings:\n  content_protect: 2\n", "content_protect", "0 or 1"),
        ("proctoring_settings:\n  check_env: 'yes please'\n", "check_env", "true or false"),
        ("proctoring_settings:\n  head_tolerance_seconds: 1.5s\n", "head_tolerance_seconds", ""),
        ("proctoring_settings:\n  head_tolerance_seconds: -1\n", "head_tolerance_seconds", ""),
        ("proctoring_settings:\n  noise_sensitivity: true\n", "noise_sensitivity", "number"),
        ("proctoring_settings:\n  browser_type: Firefox\n", "browser_type", "one of"),
        (
            "proctoring_settings:\n  object_detect_categories: [phone]\n",
            "object_detect_categories",
            "mapping",
        ),
        (
            "proctoring_settings:\n  main_camera_record: true\n  main_camera_upload: true\n",
            "main_camera_upload",
            "cannot both be true",
        ),
        (
            "proctoring_settings:\n  second_camera_record: true\n  second_camera_upload: true\n",
            "second_camera_upload",
            "cannot both be true",
        ),
        ("proctoring_settings:\n  screen_share_upload: true\n", "screen_share_upload", "both"),
        (
            "proctoring_settings:\n  second_microphone_record: true\n"
            "  second_microphone_upload: true\n",
            "second_microphone_upload",
            "both",
        ),
        (
            "proctoring_settings:\n  main_camera_record: false\n  main_camera_upload: true\n"
            "  head_tracking_server_realtime: true\n",
            "head_tracking_server_realtime",
            "streaming",
        ),
        ("proctoring_settings: [1, 2]\n", "proctoring_settings", "mapping"),
        ("application: mobile\n", "application", "one of"),
        ("start_proof: cookie\n", "start_proof", "one of"),
        ("review_threshold: 120\n", "review_threshold", "0 to 100"),
        ("review_threshold: high\n", "review_threshold", "0 to 100"),
        ("score_maximum: 0\n", "score_maximum", "whole number"),
        ("max_started_minutes: 0\n", "max_started_minutes", "whole number"),
        ("max_finished_minutes: soon\n", "max_finished_minutes", "whole number"),
        ("protector_text_color: 12\n", "protector_text_color", "colour"),
        ("name: other\n", "name", "unknown key"),
        ("- just\n- a list\n", "(file)", "mapping"),
        ("proctoring_settings: {content_protect: 1\n", "(yaml)", "not valid YAML"),
    ],
)
def test_broken_profile_error_names_file_and_key(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, "broken.yaml", text)
    with pytest.raises(ProfileError) as info:
        load_profiles(tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert key in message
    assert problem in message
    assert (info.value.path, info.value.key) == (str(path), key)


@pytest.mark.parametrize(
    ("files", "key"),
    [
        ({}, "(directory)"),
        ({"Bad-Name.yaml": "application: browser\n"}, "(file name)"),
        ({"dup.yaml": "{}\n", "dup.yml": "{}\n"}, "(file name)"),
    ],
    ids=["empty", "bad-name", "duplicate"],
)
def test_directory_problems_are_profile_errors(
    tmp_path: Path, files: dict[str, str], key: str
) -> None:
    tmp_path.mkdir(exist_ok=True)
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(ProfileError) as info:
        load_profiles(tmp_path)
    assert info.value.key == key


def test_missing_directory_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not found"):
        load_profiles(tmp_path / "nope")


def test_resolve_prefers_custom_then_deployment_then_fallback(shipped: dict[str, Profile]) -> None:
    pick = resolve_profile
    assert pick(shipped, custom_name="high_stakes", deployment_default="low_stakes").name == (
        "high_stakes"
    )
    assert pick(shipped, custom_name=None, deployment_default="low_stakes").name == "low_stakes"
    assert pick(shipped, custom_name="  ", deployment_default=None).name == "standard"
    assert pick(shipped, custom_name=" High_Stakes ", deployment_default=None).name == (
        "high_stakes"
    )


@pytest.mark.parametrize(
    ("custom", "deployment"),
    [("nonexistent", "standard"), (None, "gone"), ("gone", None)],
)
def test_resolve_unknown_name_is_an_error_not_a_downgrade(
    shipped: dict[str, Profile],
    custom: str | None,
    deployment: str | None,
) -> None:
    with pytest.raises(UnknownProfileError) as info:
        resolve_profile(shipped, custom_name=custom, deployment_default=deployment)
    assert info.value.name in ("nonexistent", "gone")
    assert "standard" in str(info.value)


def test_init_app_loads_profiles_into_extensions() -> None:
    app = Flask(__name__)
    app.config.update(PROCTOR_PROFILES_DIR=str(SHIPPED), PROCTOR_DEFAULT_PROFILE="standard")
    init_app(app)
    assert get_profiles(app)["standard"].name == "standard"


def test_init_app_requires_the_default_profile(tmp_path: Path) -> None:
    write(tmp_path, "only.yaml", "{}\n")
    app = Flask(__name__)
    app.config.update(PROCTOR_PROFILES_DIR=str(tmp_path), PROCTOR_DEFAULT_PROFILE="standard")
    with pytest.raises(ProfileError, match="PROCTOR_DEFAULT_PROFILE"):
        init_app(app)


def test_broken_profile_stops_create_app(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    path = write(folder, "standard.yaml", "proctoring_settings:\n  camera_record: true\n")
    with pytest.raises(ProfileError) as info:
        create_app(
            {
                "TESTING": True,
                "INSTANCE_PATH": str(tmp_path / "instance"),
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}",
                "SECRET_KEY": "k",
                "PROCTOR_PROFILES_DIR": str(folder),
            }
        )
    assert str(path) in str(info.value) and "camera_record" in str(info.value)


def test_create_app_exposes_shipped_profiles(app: Flask) -> None:
    assert {"low_stakes", "standard", "high_stakes"} <= set(get_profiles(app))
