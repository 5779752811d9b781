"""The event types the application sends, as the seed page names them.

Each event type belongs to one category, names the fields it needs, and says
which fields make two notifications "the same" for storm control. Its subject
and bodies are template files in `builtin/` named after the event id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CATEGORIES = ("administrative", "error", "support")

# Custom event ids share the pattern of the built-in ones.
EVENT_ID = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Fact:
    name: str
    label: str


@dataclass(frozen=True)
class EventType:
    id: str
    category: str
    title: str
    description: str
    required: tuple[Fact, ...]
    optional: tuple[Fact, ...] = ()
    key_fields: tuple[str, ...] = ()  # storm identity; empty: all fields

    @property
    def facts(self) -> tuple[Fact, ...]:
        return (*self.required, *self.optional)

    @property
    def field_names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.facts)


def _f(name: str, label: str) -> Fact:
    return Fact(name, label)


_LINK = _f("link", "Link")
_DETAILS = _f("details", "Details")

EVENTS: dict[str, EventType] = {
    e.id: e
    for e in (
        # administrative
        EventType(
            "exception-detected",
            "administrative",
            "Exception detected",
            "The application caught an unexpected exception.",
            required=(_f("message", "Message"),),
            optional=(
                _f("exceptionType", "Exception type"),
                _f("source", "Source"),
                _f("occurredAt", "Occurred at"),
                _f("stackTrace", "Stack trace"),
                _LINK,
            ),
            key_fields=("exceptionType", "message", "source"),
        ),
        EventType(
            "non-responding-agents",
            "administrative",
            "Non-responding agents",
            "One or more scan agents stopped responding.",
            required=(_f("agents", "Agents"),),
            optional=(_f("lastSeen", "Last seen"), _DETAILS, _LINK),
            key_fields=("agents",),
        ),
        EventType(
            "agent-out-of-date",
            "administrative",
            "Agent out of date",
            "A scan agent runs an older version than the application requires.",
            required=(_f("agentName", "Agent"),),
            optional=(
                _f("agentVersion", "Agent version"),
                _f("requiredVersion", "Required version"),
                _LINK,
            ),
            key_fields=("agentName",),
        ),
        EventType(
            "agent-instance-launch-failure",
            "administrative",
            "Agent instance launch failure",
            "A new scan agent instance could not be launched.",
            required=(_f("reason", "Reason"),),
            optional=(
                _f("agentName", "Agent"),
                _f("instanceId", "Instance"),
                _DETAILS,
                _LINK,
            ),
            key_fields=("agentName", "reason"),
        ),
        EventType(
            "retests-failed",
            "administrative",
            "Retests failed",
            "Retests of reported vulnerabilities could not be completed.",
            required=(_f("target", "Target"),),
            optional=(
                _f("scanId", "Scan"),
                _f("failedCount", "Failed retests"),
                _DETAILS,
                _LINK,
            ),
            key_fields=("target",),
        ),
        EventType(
            "authentication-verifier-exceptions",
            "administrative",
            "Authentication verifier exceptions",
            "The authentication verifier raised exceptions while checking a target's login.",
            required=(_f("target", "Target"),),
            optional=(_f("message", "Message"), _DETAILS, _LINK),
            key_fields=("target", "message"),
        ),
        # error
        EventType(
            "error-report",
            "error",
            "Error report",
            "The application's error handler reported an error.",
            required=(_f("message", "Message"),),
            optional=(
                _f("errorId", "Error id"),
                _f("exceptionType", "Exception type"),
                _f("url", "Request URL"),
                _f("user", "User"),
                _f("occurredAt", "Occurred at"),
                _f("stackTrace", "Stack trace"),
                _LINK,
            ),
            key_fields=("exceptionType", "message"),
        ),
        # support
        EventType(
            "request-for-assistance",
            "support",
            "Request for assistance",
            "A user asked for assistance.",
            required=(_f("requester", "Requester"), _f("message", "Message")),
            optional=(_f("requesterEmail", "Requester email"), _f("topic", "Topic"), _LINK),
            key_fields=("requester", "message"),
        ),
        EventType(
            "new-guided-user-website-added",
            "support",
            "New guided user website added",
            "A user added a website with the guided setup.",
            required=(_f("website", "Website"),),
            optional=(_f("user", "Added by"), _f("addedAt", "Added at"), _LINK),
            key_fields=("website",),
        ),
        EventType(
            "new-form-authentication-login",
            "support",
            "New form authentication login",
            "A form authentication login was configured for a website.",
            required=(_f("website", "Website"),),
            optional=(_f("user", "User"), _f("loginUrl", "Login URL"), _LINK),
            key_fields=("website", "user"),
        ),
        EventType(
            "access-granted",
            "support",
            "Access granted",
            "A user was granted access.",
            required=(_f("user", "User"),),
            optional=(
                _f("resource", "Resource"),
                _f("role", "Role"),
                _f("grantedBy", "Granted by"),
                _LINK,
            ),
            key_fields=("user", "resource"),
        ),
        EventType(
            "scans-not-responding",
            "support",
            "Scans not responding",
            "One or more scans stopped reporting progress.",
            required=(_f("scans", "Scans"),),
            optional=(_f("since", "Since"), _DETAILS, _LINK),
            key_fields=("scans",),
        ),
        EventType(
            "scan-running-longer-than-expected",
            "support",
            "Scan running longer than expected",
            "A scan has been running longer than expected.",
            required=(_f("scanName", "Scan"),),
            optional=(
                _f("target", "Target"),
                _f("startedAt", "Started at"),
                _f("expectedDuration", "Expected duration"),
                _f("elapsed", "Elapsed"),
                _LINK,
            ),
            key_fields=("scanName",),
        ),
        EventType(
            "maximum-scan-time-exceeded",
            "support",
            "Maximum scan time exceeded",
            "A scan reached its maximum scan time and was stopped.",
            required=(_f("scanName", "Scan"),),
            optional=(
                _f("target", "Target"),
                _f("maxDuration", "Maximum duration"),
                _f("elapsed", "Elapsed"),
                _LINK,
            ),
            key_fields=("scanName",),
        ),
    )
}


def custom_event(event_id: str, category: str) -> EventType:
    """An event type the catalog does not know: its text comes from the request."""
    return EventType(event_id, category, event_id, "A custom notification.", required=())
