"""GET /visits: counts the visits of the workspace in storage; echoes what the request carried."""

import json
from collections.abc import Mapping

from dify_plugin import Endpoint
from werkzeug import Request, Response


class VisitsEndpoint(Endpoint):
    def _invoke(self, r: Request, values: Mapping, settings: Mapping) -> Response:
        storage = self.session.storage
        count = int(storage.get("visits")) if storage.exist("visits") else 0
        storage.set("visits", str(count + 1).encode("ascii"))
        body = {
            "visits": count + 1,
            "greeting": settings.get("greeting", ""),
            "query": r.args.to_dict(),
            "host": r.host,
            "hook_id": r.headers.get("Dify-Hook-Id"),
            "hook_url": r.headers.get("Dify-Hook-Url"),
            "forwarded_for": r.headers.get("X-Forwarded-For"),
            "endpoint_id": self.session.endpoint_id,
        }
        return Response(json.dumps(body), status=200, content_type="application/json")
