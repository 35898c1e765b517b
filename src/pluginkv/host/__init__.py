"""The Dify plugin host, service side: running ``dify_plugin`` plugins and serving their calls.

The wire protocol is the one Dify's plugin daemon speaks (see
``docs/dify-protocol.md``).  Needs the ``server`` extra.  The shapes both
sides of the channel share (``messages``, ``key_paths``) live in
``pluginkv.dify``, which runs inside a plugin's process; the HTTP routes that
expose the host live in ``pluginkv.server``.

===================  =================================================================
``framing``          newline-delimited JSON in both directions
``manifest``         what a plugin declares about itself at registration
``sessions``         one host-to-plugin request and what comes back on it
``connection``       one running plugin's channel: reading events, routing sessions
``invocations``      answering backwards invocations (storage; an error for the rest)
``storage_handler``  the storage verbs of a backwards invocation, served from the ``Store``
``extended_storage`` the host side of ``pluginkv.dify.storage(session)``'s operations
``files``            files a plugin uploads, and the signed URLs that serve them
``remote``           the TCP listener for remote-debug plugins: handshake, registration
``plugin_dir``       reading a plugin folder: manifest and declarations from its YAML
``difypkg``          ``.difypkg`` packages, unpacked into plugin folders
``package_index``    the package index the plugins' environments install from
``pythons``          the Python interpreter a plugin's environment is built on
``envs``             the virtual environments of installed plugins
``tracebacks``       the exception that ended a plugin, picked out of its stderr
``plugin_logs``      each installed plugin's log file: rotated, read on from a cursor
``local``            one installed plugin's process over stdio, restarted when it dies
``installs``         which folders are installed for which workspaces, on disk
``parameter_types``  a tool's declared parameter types: casting and defaults
``tools``            tool calls as Dify's API makes them: the declared tool, its credentials
``endpoint_settings`` an endpoint's declared settings, checked
``endpoints``        a plugin's endpoints: their URLs and the raw requests they receive
``offer``            what a plugin offers, as the service describes it
``plugin_host``      the registry of running plugins, and the calls the service makes
===================  =================================================================
"""
