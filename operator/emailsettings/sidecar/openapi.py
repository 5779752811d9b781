"""The OpenAPI 3.0 description of the sidecar's HTTP API, served at /openapi.json.

Tests run schemathesis against this document and the live server, so it must
describe every status code and body the handlers can produce.
"""

from __future__ import annotations

from typing import Any

from emailsettings.sidecar import intake
from emailsettings.sidecar.spool import DeliveryState, State
from emailsettings.sidecar.templates import CATEGORIES, EVENT_ID, EVENTS

JSON = "application/json"
PROBLEM = "application/problem+json"


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _retry_problem(description: str) -> dict[str, Any]:
    return {
        **_problem(description),
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        },
    }


TIMESTAMP = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC."}
NOTIFICATION_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$", "example": "0" * 32}


def document(max_request_bytes: int) -> dict[str, Any]:
    catalog = ", ".join(f"`{e.id}` ({e.category})" for e in EVENTS.values())
    schemas: dict[str, Any] = {
        "Problem": {
            "type": "object",
            "description": "An error, as RFC 9457 problem details.",
            "required": ["title", "status", "detail"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string", "description": "What is wrong, for a person."},
                "field": _nullable(
                    {"type": "string", "description": "The request field at fault."}
                ),
            },
        },
        "NotificationRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["category", "event"],
            "properties": {
                "category": {"type": "string", "enum": list(CATEGORIES)},
                "event": {
                    "type": "string",
                    "pattern": EVENT_ID.pattern,
                    "description": "A catalog event id, or a custom one (which then needs a "
                    f"subject and a body or fields, or override templates). Catalog: {catalog}.",
                    "example": "agent-out-of-date",
                },
                "fields": {
                    "type": "object",
                    "maxProperties": intake.MAX_FIELDS,
                    "description": "Template fields; names start with a letter and contain "
                    "letters, digits and '_'. Values may span lines but contain no NUL.",
                    "additionalProperties": {
                        "nullable": True,
                        "oneOf": [
                            {"type": "string", "maxLength": intake.MAX_FIELD_VALUE},
                            {"type": "number"},
                            {"type": "boolean"},
                        ],
                    },
                    "example": {"agentName": "agent-7", "agentVersion": "1.2"},
                },
                "subject": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": intake.MAX_SUBJECT,
                    "description": "Overrides the template subject. One line: no control "
                    "characters.",
                },
                "body": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": intake.MAX_BODY,
                    "description": "Plain text shown in the message (the HTML part escapes it).",
                },
                "idempotencyKey": {
                    "type": "string",
                    "pattern": "^[\\x21-\\x7e]{1,200}$",
                    "description": "Repeating a request with the same key returns the same "
                    "notification; the Message-ID is derived from it. May also be sent as "
                    "the Idempotency-Key header.",
                },
            },
        },
        "Accepted": {
            "type": "object",
            "required": ["id", "state", "duplicate", "location"],
            "properties": {
                "id": NOTIFICATION_ID,
                "state": {"type": "string", "enum": [str(s) for s in State]},
                "duplicate": {
                    "type": "boolean",
                    "description": "True when the idempotency key was seen before.",
                },
                "collapsedInto": _nullable(
                    {
                        **NOTIFICATION_ID,
                        "description": "Storm control counted this notification into that one.",
                    }
                ),
                "location": {"type": "string"},
            },
        },
        "Delivery": {
            "type": "object",
            "required": ["recipient", "state", "attempts", "updatedAt"],
            "properties": {
                "recipient": {"type": "string"},
                "state": {"type": "string", "enum": [str(s) for s in DeliveryState]},
                "attempts": {"type": "integer", "minimum": 0},
                "lastCode": _nullable({"type": "integer"}),
                "lastError": _nullable({"type": "string"}),
                "updatedAt": TIMESTAMP,
            },
        },
        "Notification": {
            "type": "object",
            "required": [
                "id",
                "category",
                "event",
                "state",
                "createdAt",
                "updatedAt",
                "attempts",
                "occurrences",
                "firstAt",
                "lastAt",
                "deliveries",
            ],
            "properties": {
                "id": NOTIFICATION_ID,
                "category": {"type": "string"},
                "event": {"type": "string"},
                "state": {
                    "type": "string",
                    "enum": [str(s) for s in State],
                    "description": "queued and retrying wait for delivery; delivered, "
                    "partially_delivered (some recipients dead-lettered), dead_letter and "
                    "collapsed (counted into collapsedInto) are final.",
                },
                "createdAt": TIMESTAMP,
                "updatedAt": TIMESTAMP,
                "attempts": {"type": "integer", "minimum": 0},
                "nextAttemptAt": _nullable(TIMESTAMP),
                "lastError": _nullable({"type": "string"}),
                "occurrences": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "How many identical notifications this one stands for.",
                },
                "firstAt": TIMESTAMP,
                "lastAt": TIMESTAMP,
                "collapsedInto": _nullable(NOTIFICATION_ID),
                "idempotencyKey": _nullable({"type": "string"}),
                "messageId": _nullable({"type": "string"}),
                "deadLetterReason": _nullable({"type": "string"}),
                "finishedAt": _nullable(TIMESTAMP),
                "deliveries": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Delivery"},
                },
            },
        },
        "NotificationList": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Notification"}}
            },
        },
        "Settings": {
            "type": "object",
            "required": ["name", "namespace", "mayDeliver", "reason", "message"],
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "mayDeliver": {"type": "boolean"},
                "reason": {"type": "string"},
                "message": {"type": "string"},
                "generation": _nullable({"type": "integer"}),
                "observedGeneration": _nullable({"type": "integer"}),
                "readyReason": _nullable({"type": "string"}),
                "apiError": _nullable({"type": "string"}),
            },
        },
        "DeliveryStatus": {
            "type": "object",
            "required": ["state"],
            "properties": {
                "state": {
                    "type": "string",
                    "enum": [
                        "starting",
                        "held",
                        "idle",
                        "delivering",
                        "backing-off",
                        "spool-unavailable",
                    ],
                },
                "server": _nullable({"type": "string"}),
                "lastSuccessAt": _nullable(TIMESTAMP),
                "lastError": _nullable({"type": "string"}),
                "lastErrorAt": _nullable(TIMESTAMP),
                "backoffUntil": _nullable(TIMESTAMP),
            },
        },
        "SpoolStatus": {
            "type": "object",
            "required": ["healthy"],
            "properties": {
                "healthy": {"type": "boolean"},
                "error": _nullable({"type": "string"}),
                "pending": _nullable({"type": "integer"}),
                "pendingBytes": _nullable({"type": "integer"}),
                "oldestPendingAgeSeconds": _nullable({"type": "number"}),
                "deadLetter": _nullable({"type": "integer"}),
                "delivered": _nullable({"type": "integer"}),
                "limits": {
                    "type": "object",
                    "properties": {
                        "maxPending": {"type": "integer"},
                        "maxPendingBytes": {"type": "integer"},
                        "maxRows": {"type": "integer"},
                    },
                },
            },
        },
        "Status": {
            "type": "object",
            "required": ["settings", "delivery", "spool"],
            "properties": {
                "settings": {"$ref": "#/components/schemas/Settings"},
                "delivery": {"$ref": "#/components/schemas/DeliveryStatus"},
                "spool": {"$ref": "#/components/schemas/SpoolStatus"},
            },
        },
        "Readiness": {
            "type": "object",
            "required": ["ready", "reason", "message", "delivering"],
            "properties": {
                "ready": {"type": "boolean", "description": "Notifications are accepted."},
                "reason": {"type": "string"},
                "message": {"type": "string"},
                "delivering": {
                    "type": "boolean",
                    "description": "The settings allow sending now (accepting does not "
                    "depend on it).",
                },
                "deliveryReason": {"type": "string"},
                "deliveryMessage": {"type": "string"},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "failing"]},
                "detail": _nullable({"type": "string"}),
            },
        },
    }
    readiness = {
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Readiness"}}},
    }
    health = {"content": {JSON: {"schema": {"$ref": "#/components/schemas/Health"}}}}
    paths: dict[str, Any] = {
        "/v1/notifications": {
            "post": {
                "operationId": "createNotification",
                "summary": "Take a notification; answers 202 once it is durably stored.",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": {"$ref": "#/components/schemas/NotificationRequest"}}
                    },
                },
                "responses": {
                    "202": {
                        "description": "Stored; it will be delivered (or dead-lettered).",
                        "headers": {
                            "Location": {
                                "description": "Where to ask for the delivery state.",
                                "schema": {"type": "string"},
                            }
                        },
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Accepted"}}},
                    },
                    "400": _problem("Malformed JSON or Idempotency-Key header."),
                    "409": _problem("The idempotency key was used for different content."),
                    "413": _problem(f"The body is larger than {max_request_bytes} bytes."),
                    "415": _problem("The body is not application/json."),
                    "422": _problem("The request breaks a rule; detail and field say which."),
                    "503": _retry_problem(
                        "Not stored: the spool is full, its disk is full or it is broken."
                    ),
                },
            },
            "get": {
                "operationId": "listNotifications",
                "summary": "Recent notifications, newest first (e.g. the dead letters).",
                "parameters": [
                    {
                        "name": "state",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": [str(s) for s in State]},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The notifications.",
                        "content": {
                            JSON: {"schema": {"$ref": "#/components/schemas/NotificationList"}}
                        },
                    },
                    "400": _problem(
                        "An unknown state, a limit out of range or an unknown parameter."
                    ),
                    "503": _retry_problem("The spool cannot be read."),
                },
            },
        },
        "/v1/notifications/{id}": {
            "get": {
                "operationId": "getNotification",
                "summary": "A notification's delivery state, per recipient.",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": NOTIFICATION_ID}
                ],
                "responses": {
                    "200": {
                        "description": "The notification.",
                        "content": {
                            JSON: {"schema": {"$ref": "#/components/schemas/Notification"}}
                        },
                    },
                    "404": _problem("No such notification (or purged after the retention)."),
                    "503": _retry_problem("The spool cannot be read."),
                },
            }
        },
        "/v1/status": {
            "get": {
                "operationId": "getStatus",
                "summary": "Settings followed, whether and why delivery is held, spool state.",
                "responses": {
                    "200": {
                        "description": "The status.",
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Status"}}},
                    }
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "Liveness: the process and its spool writer work.",
                "responses": {
                    "200": {"description": "Alive.", **health},
                    "503": {"description": "Broken beyond self-repair; restart.", **health},
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readiness",
                "summary": "Readiness: notifications are accepted. Says whether and why "
                "delivery is held, without failing for it.",
                "responses": {
                    "200": {"description": "Accepting.", **readiness},
                    "503": {"description": "Not accepting (spool full or broken).", **readiness},
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics.",
                "responses": {
                    "200": {
                        "description": "Text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.0 document.",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "emailsettings notification sidecar",
            "version": "v1",
            "description": "Takes notifications from the application on localhost, stores "
            "them durably and delivers them by SMTP using the EmailSettings it follows.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": schemas},
    }
