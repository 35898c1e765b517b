"""Running plugins written with Dify's ``dify_plugin`` SDK, and serving their ``session.storage``.

The wire protocol is the one Dify's plugin daemon speaks (see
``docs/dify-host.md``).  The host side lives in the submodules and needs the
``server`` extra; importing this package alone pulls in nothing beyond the core.

==================  =================================================================
``framing``         newline-delimited JSON in both directions
``messages``        the host's lines: requests and backwards-invocation answers
``manifest``        what a plugin declares about itself at registration
``sessions``        one host-to-plugin request and what comes back on it
``connection``      one running plugin's channel: reading events, routing sessions
``invocations``     answering backwards invocations (storage; an error for the rest)
``storage_handler`` the storage verbs of a backwards invocation, served from the ``Store``
``remote``          the TCP listener for remote-debug plugins: handshake, registration
``plugin_dir``      reading a plugin folder: manifest and declarations from its YAML
``envs``            the virtual environments of installed plugins
``local``           one installed plugin's process over stdio, restarted when it dies
``installs``        which folders are installed for which workspaces, on disk
``host``            the registry of running plugins, and the calls the service makes
==================  =================================================================
"""
