"""Subject, plain-text and HTML templates for every event type, overridable per file."""

from emailsettings.sidecar.templates.catalog import (
    CATEGORIES,
    EVENT_ID,
    EVENTS,
    FIELD_NAME,
    EventType,
    Fact,
    custom_event,
)
from emailsettings.sidecar.templates.render import RenderContext, Rendered, Renderer

__all__ = [
    "CATEGORIES",
    "EVENTS",
    "EVENT_ID",
    "FIELD_NAME",
    "EventType",
    "Fact",
    "RenderContext",
    "Rendered",
    "Renderer",
    "custom_event",
]
