"""The EmailSettings API: models, condition contract and reasons. Imports no kopf."""

GROUP = "emailsettings.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "EmailSettings"
PLURAL = "emailsettings"
