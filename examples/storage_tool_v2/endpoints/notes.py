"""/notes/<name>: POST stores the request body under notes/<name>; GET answers it back."""

from collections.abc import Mapping

from dify_plugin import Endpoint
from werkzeug import Request, Response


class NotesEndpoint(Endpoint):
    def _invoke(self, r: Request, values: Mapping, settings: Mapping) -> Response:
        storage, key = self.session.storage, f"notes/{values['name']}"
        if r.method == "POST":
            body = r.get_data()
            storage.set(key, body)
            return Response(f"stored {len(body)} bytes", status=201, content_type="text/plain")
        if not storage.exist(key):
            return Response("no such note", status=404, content_type="text/plain")
        return Response(storage.get(key), status=200, content_type="application/octet-stream")
