from typing import Any

from dify_plugin import ToolProvider
from dify_plugin.errors.tool import ToolProviderCredentialValidationError


class StorageToolProvider(ToolProvider):
    def _validate_credentials(self, credentials: dict[str, Any]) -> None:
        # No service to ask: an API key, when given, only has to look like one.
        api_key = credentials.get("api_key")
        if api_key and not str(api_key).startswith("sk-"):
            raise ToolProviderCredentialValidationError("the API key must start with sk-")
