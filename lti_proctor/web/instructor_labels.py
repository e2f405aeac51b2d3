"""Readable names for what instructor pages show: attempt states, risk sources, report codes.

Each name is marked for the catalogs with N_ and translated when the page is drawn. A code the
service sends that is not here is shown as it came (the service adds codes over time).
"""

from __future__ import annotations

from lti_proctor.i18n import N_

STATE_LABELS = {
    "created": N_("Not started"),
    "started": N_("In progress"),
    "finished": N_("Finished, report pending"),
    "reported": N_("Report ready"),
    "failed": N_("Failed"),
}
DECISION_LABELS = {
    "no_concern": N_("No concern"),
    "concern_confirmed": N_("Concern confirmed"),
    "dismissed": N_("Dismissed"),
}
RISK_SOURCES = {
    "overall_risk_score": N_("AI risk score"),
    "credibility": N_("100 - Trust Index"),
    "none": N_("no score in the report"),
}
# The report's risk_level and a violation's severity share these words.
LEVELS = {"low": N_("low"), "medium": N_("medium"), "high": N_("high")}

# The service's action_type and violation codes (trustexam-api.md §2.6), in both spellings.
EVENT_NAMES = {
    "proctoring_policy_agree": N_("Accepted the proctoring rules"),
    "opened": N_("Opened the exam"),
    "started": N_("Started the exam"),
    "finished": N_("Finished the exam"),
    "submitted": N_("Submitted the exam"),
    "reviewed": N_("Reviewed"),
    "fullscreen_closed": N_("Left full screen"),
    "focus_down": N_("Left the exam window"),
    "focus_restored": N_("Came back to the exam window"),
    "noise_detect": N_("Noise detected"),
    "noise_detected": N_("Noise detected"),
    "speech_detect": N_("Speech detected"),
    "silence_restored": N_("Quiet again"),
    "head_not_detected": N_("Face not visible"),
    "head_detected": N_("Face visible again"),
    "head_empty": N_("Nobody in front of the camera"),
    "head_rotated": N_("Head turned away"),
    "head_rotate": N_("Head turned away"),
    "head_restored": N_("Head position restored"),
    "head_identity": N_("Identity check"),
    "head_depth": N_("Too far from or too close to the camera"),
    "head_many": N_("More than one person in view"),
    "head_mismatch": N_("A different person in view"),
    "object_detected": N_("Prohibited object detected"),
    "prohibited_objects": N_("Prohibited object detected"),
    "browser_tab_changed": N_("Switched browser tab"),
    "camera_off": N_("Camera turned off"),
    "mic_muted": N_("Microphone muted"),
    "earphone_detected": N_("Earphones detected"),
    "eye_away": N_("Looking away from the screen"),
    "eye_left": N_("Looking left"),
    "eye_right": N_("Looking right"),
    "eye_up": N_("Looking up"),
    "eye_down": N_("Looking down"),
}


def event_name(code: object) -> str | None:
    """The catalog message of a service code (either spelling), or None for an unknown code."""
    if not isinstance(code, str):
        return None
    return EVENT_NAMES.get(code.strip().lower().replace("-", "_"))
