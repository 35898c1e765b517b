"""Engine-side services, with no web framework: storage work on threads, and tokens.

Both the HTTP service (``pluginkv.server``) and the plugin host
(``pluginkv.host``) run their storage calls and check their tokens here.

================  =================================================================
``readers``       where reads run: inline on the event loop, or on worker threads
``write_groups``  the writer: every write runs here; on SQLite concurrent ones share a commit
``tokens``        bearer tokens, debug keys and signed URLs, and the signing secret
================  =================================================================
"""
