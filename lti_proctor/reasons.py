"""Reason codes: the one list of every failure a person or a caller can see, by its stored code.

Bottom floor: imports nothing of ours, so lti/, proctoring/, attempts/ and web/ may all use it.
Wording and status live with the code that refuses (lti/errors.py for launches) and the one
response helper in web/errors.py; README.md's reason-code table lists every member (tested).
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Every reason code; the value is what pages, API bodies and log lines show."""

    # Login and launch (lti/errors.py has each one's wording and status).
    LOGIN_INVALID = "launch.login_invalid"
    PLATFORM_REFUSED = "launch.platform_refused"
    STATE_MISSING = "launch.state_missing"
    STATE_MISMATCH = "launch.state_mismatch"
    NONCE_INVALID = "launch.nonce_invalid"
    NONCE_REPLAYED = "launch.nonce_replayed"
    TOKEN_INVALID = "launch.token_invalid"
    ALGORITHM_NOT_ALLOWED = "launch.algorithm_not_allowed"
    KID_UNKNOWN = "launch.kid_unknown"
    JWKS_UNAVAILABLE = "launch.jwks_unavailable"
    SIGNATURE_INVALID = "launch.signature_invalid"
    TOKEN_EXPIRED = "launch.token_expired"
    TOKEN_NOT_YET_VALID = "launch.token_not_yet_valid"
    TOKEN_TOO_OLD = "launch.token_too_old"
    TARGET_LINK_INVALID = "launch.target_link_invalid"
    AUDIENCE_INVALID = "launch.audience_invalid"
    REGISTRATION_UNKNOWN = "launch.registration_unknown"
    DEPLOYMENT_UNKNOWN = "launch.deployment_unknown"
    DEPLOYMENT_INACTIVE = "launch.deployment_inactive"
    MESSAGE_UNSUPPORTED = "launch.message_unsupported"
    VERSION_UNSUPPORTED = "launch.version_unsupported"
    CLAIM_MISSING = "launch.claim_missing"
    CLAIM_INVALID = "launch.claim_invalid"
    ROLE_NOT_ALLOWED = "launch.role_not_allowed"
    INVALID = "launch.invalid"
    # What a launch asks for that the tool cannot provide.
    PROFILE_UNKNOWN = "launch.profile_unknown"
    EXAM_NOT_FOUND = "launch.exam_not_found"
    EXAM_NOT_OPEN = "launch.exam_not_open"
    ACCESS_CODE_EXPOSED = "launch.access_code_exposed"
    DEEP_LINK_UNSUPPORTED = "launch.deep_link_unsupported"
    # Adding an exam by deep linking (the form shown in the LMS frame).
    DEEP_LINK_EXPIRED = "deep_link.expired"
    PROCTOR_UNAVAILABLE = "proctor.unavailable"
    PROCTOR_REJECTED = "proctor.rejected"
    TOOL_UNAVAILABLE = "tool.unavailable"  # our database or Redis is unreachable
    # The exam page, its links and its API.
    EXAM_RETRY_EXPIRED = "exam.retry_expired"
    EXAM_LINK_EXPIRED = "exam.link_expired"
    EXAM_TOKEN_INVALID = "token.invalid"
    ATTEMPT_NOT_STARTED = "attempt.not_started"
    ATTEMPT_START_PROOF_WEBHOOK = "attempt.start_proof_webhook"
    ATTEMPT_STATE_CONFLICT = "attempt.state_conflict"
    # The instructor view.
    INSTRUCTOR_TOKEN_INVALID = "instructor.token_invalid"
    INSTRUCTOR_TOKEN_REFUSED = "instructor.token_refused"
    INSTRUCTOR_ATTEMPT_UNKNOWN = "instructor.attempt_unknown"
    INSTRUCTOR_REVIEW_INVALID = "instructor.review_invalid"
    INSTRUCTOR_NO_LEGACY_CODE = "instructor.no_legacy_code"
    # The proctoring service's webhooks.
    WEBHOOK_UNAUTHORIZED = "webhook.unauthorized"
    WEBHOOK_BAD_BODY = "webhook.bad_body"
    WEBHOOK_ATTEMPT_UNKNOWN = "webhook.attempt_unknown"
    # Registering the tool from an LMS (issue 12).
    REGISTER_INVITE_INVALID = "register.invite_invalid"
    REGISTER_CONFIG_UNREACHABLE = "register.config_unreachable"
    REGISTER_CONFIG_INVALID = "register.config_invalid"
    REGISTER_PLATFORM_REFUSED = "register.platform_refused"
    REGISTER_ALREADY_REGISTERED = "register.already_registered"
    # Any route: a body over MAX_CONTENT_LENGTH, refused before it is read.
    REQUEST_TOO_LARGE = "request.too_large"
    # Plain HTTP failures (unknown URL, wrong method, ...) and the unexpected.
    HTTP_BAD_REQUEST = "http.400"
    HTTP_NOT_FOUND = "http.404"
    HTTP_METHOD_NOT_ALLOWED = "http.405"
    HTTP_ERROR = "http.error"
    INTERNAL = "internal"

    @classmethod
    def for_http_status(cls, status: int) -> Reason:
        """The http.* code of a plain HTTP failure; http.error for statuses without their own."""
        try:
            return cls(f"http.{status}")
        except ValueError:
            return cls.HTTP_ERROR
