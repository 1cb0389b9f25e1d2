"""The hub's REST API and staff WebSocket; modules register their endpoints on :data:`api`."""

from router.api.spec import Api

api = Api()
