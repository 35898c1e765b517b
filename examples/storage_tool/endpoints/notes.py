"""POST /notes/<name>: stores the request body under notes/<name>; answers its length."""

from collections.abc import Mapping

from dify_plugin import Endpoint
from werkzeug import Request, Response


class NotesEndpoint(Endpoint):
    def _invoke(self, r: Request, values: Mapping, settings: Mapping) -> Response:
        body = r.get_data()
        self.session.storage.set(f"notes/{values['name']}", body)
        return Response(f"stored {len(body)} bytes", status=201, content_type="text/plain")
