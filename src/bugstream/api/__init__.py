"""The REST API (`/api/v1`): parse -> service -> respond, nothing more."""
