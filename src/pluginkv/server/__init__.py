"""The HTTP service: ``create_app(settings)`` builds the ASGI app that ``pluginkv serve`` runs.

Needs the ``server`` extra: ``pip install 'pluginkv[server]'``.
"""
