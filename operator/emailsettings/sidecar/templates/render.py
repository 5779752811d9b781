"""Render a notification's subject, plain text and HTML from templates.

Templates are looked up by name, first in the override directory (a mounted
ConfigMap: keys like `agent-out-of-date.subject.j2`), then in the built-in set.
HTML templates are autoescaped; all templates run in Jinja's immutable sandbox.
An override that fails to render falls back to the built-in template, so a
broken ConfigMap never loses a notification.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from emailsettings.sidecar.templates.catalog import EVENTS, EventType, custom_event

log = logging.getLogger(__name__)

PARTS = ("subject", "txt", "html")
BUILTIN_DIR = Path(str(resources.files("emailsettings.sidecar.templates") / "builtin"))


@dataclass(frozen=True)
class RenderContext:
    category: str
    event: str
    fields: Mapping[str, str]
    subject: str | None = None
    body: str | None = None
    occurrences: int = 1
    first_at: float = 0.0
    last_at: float = 0.0


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def safe_link(value: str | None) -> str | None:
    """Only http(s) URLs become links; anything else (javascript:, data:) is dropped."""
    if not value:
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
        return None
    return value.strip()


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _environment(*directories: Path) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader([str(d) for d in directories]),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2", "html"), default_for_string=False, default=False
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=True,  # a ConfigMap update replaces files under a running sidecar
    )


class Renderer:
    def __init__(self, override_dir: Path | None = None) -> None:
        self.override_dir = override_dir if override_dir and override_dir.is_dir() else None
        self._builtin = _environment(BUILTIN_DIR)
        self._env = (
            _environment(self.override_dir, BUILTIN_DIR) if self.override_dir else self._builtin
        )

    def event_type(self, category: str, event: str) -> EventType:
        known = EVENTS.get(event)
        return known if known is not None else custom_event(event, category)

    def has_template(self, event: str, part: str) -> bool:
        """True if a template (override or built-in) exists for this event and part."""
        try:
            self._env.get_template(f"{event}.{part}.j2")
        except jinja2.TemplateNotFound:
            return False
        except jinja2.TemplateError:
            return True  # it exists; rendering falls back if it is broken
        return True

    def render(self, ctx: RenderContext) -> Rendered:
        event = self.event_type(ctx.category, ctx.event)
        variables = self._variables(event, ctx)
        subject = ctx.subject or self._render_part(ctx.event, "subject", variables)
        if ctx.occurrences > 1:
            subject = f"[{ctx.occurrences}x] {subject}"
        return Rendered(
            subject=subject,
            text=self._render_part(ctx.event, "txt", variables).strip() + "\n",
            html=self._render_part(ctx.event, "html", variables),
        )

    def _render_part(self, event_id: str, part: str, variables: dict[str, Any]) -> str:
        names = [f"{event_id}.{part}.j2", f"_custom.{part}.j2"]
        if self._env is not self._builtin:
            try:
                return self._env.select_template(names).render(variables)
            except jinja2.TemplateError as error:
                log.warning(
                    "template override for %s (%s) failed, using the built-in one: %s",
                    event_id,
                    part,
                    error,
                )
        return self._builtin.select_template(names).render(variables)

    @staticmethod
    def _variables(event: EventType, ctx: RenderContext) -> dict[str, Any]:
        declared = event.field_names
        facts = [
            {"name": f.name, "label": f.label, "value": ctx.fields[f.name]}
            for f in event.facts
            if ctx.fields.get(f.name) and f.name != "link"
        ]
        extra = [
            {"name": name, "label": name, "value": value}
            for name, value in sorted(ctx.fields.items())
            if name not in declared and value
        ]
        return {
            "event": {
                "id": event.id,
                "title": event.title,
                "category": event.category,
                "description": event.description,
            },
            "fields": dict(ctx.fields),
            "facts": facts,
            "extra": extra,
            "subject": ctx.subject,
            "body": ctx.body,
            "link": safe_link(ctx.fields.get("link")),
            "occurrences": ctx.occurrences,
            "first_seen": _iso(ctx.first_at),
            "last_seen": _iso(ctx.last_at),
        }
