"""GET /stream?n=N: a streamed response of N lines, generated one by one."""

from collections.abc import Generator, Mapping

from dify_plugin import Endpoint
from werkzeug import Request, Response


class StreamEndpoint(Endpoint):
    def _invoke(self, r: Request, values: Mapping, settings: Mapping) -> Response:
        lines = int(r.args.get("n", "3"))

        def generate() -> Generator[str, None, None]:
            for i in range(lines):
                yield f"line {i}\n"

        return Response(generate(), status=200, content_type="text/plain")
