"""The published fields of Atlassian Statuspage's public API v2, as test data (issue 24).

Sources (read 2026-12-07): the API page every Statuspage page serves, e.g.
https://confluence.status.atlassian.com/api (summary.json, status.json, components.json,
incidents.json, incidents/unresolved.json, scheduled-maintenances.json, .../upcoming.json,
.../active.json, with their example responses), and MongoDB's OpenAPI description of the same
API (https://www.mongodb.com/docs/api/doc/cloud-status.yaml, "powered by Statuspage.io": page,
component, incident, incident update and scheduled maintenance objects with their types and
enumerations). A value is the set of JSON types a field may take ("null" where the documents
show null, e.g. a component's description or an incident's resolved_at).
"""

from __future__ import annotations

from typing import Final

STRING: Final = frozenset({"string"})
OPTIONAL_STRING: Final = frozenset({"string", "null"})
BOOLEAN: Final = frozenset({"boolean"})
OPTIONAL_BOOLEAN: Final = frozenset({"boolean", "null"})
INTEGER: Final = frozenset({"integer"})
ARRAY: Final = frozenset({"array"})
OPTIONAL_ARRAY: Final = frozenset({"array", "null"})
OBJECT: Final = frozenset({"object"})

PAGE: Final = {
    "id": STRING,
    "name": STRING,
    "url": OPTIONAL_STRING,
    "time_zone": STRING,
    "updated_at": STRING,
}
STATUS: Final = {"indicator": STRING, "description": STRING}
INDICATORS: Final = frozenset({"none", "minor", "major", "critical"})
COMPONENT: Final = {
    "id": STRING,
    "name": STRING,
    "status": STRING,
    "created_at": STRING,
    "updated_at": STRING,
    "position": INTEGER,
    "description": OPTIONAL_STRING,
    "showcase": BOOLEAN,
    "start_date": OPTIONAL_STRING,
    "group_id": OPTIONAL_STRING,
    "page_id": STRING,
    "group": BOOLEAN,
    "only_show_if_degraded": BOOLEAN,
}
#: A group is a component with group = true and the ids of its components.
GROUP: Final = COMPONENT | {"components": ARRAY}
COMPONENT_STATUSES: Final = frozenset(
    {"operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"}
)
INCIDENT_UPDATE: Final = {
    "id": STRING,
    "status": STRING,
    "body": STRING,
    "incident_id": STRING,
    "created_at": STRING,
    "updated_at": STRING,
    "display_at": STRING,
    "affected_components": OPTIONAL_ARRAY,
    "deliver_notifications": OPTIONAL_BOOLEAN,
    "custom_tweet": OPTIONAL_STRING,
    "tweet_id": OPTIONAL_STRING,
}
INCIDENT: Final = {
    "id": STRING,
    "name": STRING,
    "status": STRING,
    "created_at": STRING,
    "updated_at": OPTIONAL_STRING,
    "monitoring_at": OPTIONAL_STRING,
    "resolved_at": OPTIONAL_STRING,
    "impact": STRING,
    "shortlink": OPTIONAL_STRING,
    "started_at": STRING,
    "page_id": STRING,
    "incident_updates": ARRAY,
    "components": ARRAY,
}
INCIDENT_STATUSES: Final = frozenset(
    {"investigating", "identified", "monitoring", "resolved", "postmortem"}
)
IMPACTS: Final = frozenset({"none", "minor", "major", "critical", "maintenance"})
SCHEDULED_MAINTENANCE: Final = INCIDENT | {
    "scheduled_for": STRING,
    "scheduled_until": STRING,
}
MAINTENANCE_STATUSES: Final = frozenset({"scheduled", "in_progress", "verifying", "completed"})

#: Each document's top-level keys.
DOCUMENTS: Final = {
    "summary": {
        "page": OBJECT,
        "components": ARRAY,
        "incidents": ARRAY,
        "scheduled_maintenances": ARRAY,
        "status": OBJECT,
    },
    "status": {"page": OBJECT, "status": OBJECT},
    "components": {"page": OBJECT, "components": ARRAY},
    "incidents": {"page": OBJECT, "incidents": ARRAY},
    "incidents/unresolved": {"page": OBJECT, "incidents": ARRAY},
    "scheduled-maintenances": {"page": OBJECT, "scheduled_maintenances": ARRAY},
    "scheduled-maintenances/upcoming": {"page": OBJECT, "scheduled_maintenances": ARRAY},
    "scheduled-maintenances/active": {"page": OBJECT, "scheduled_maintenances": ARRAY},
}
