"""The PDA API: aiohttp application, WebSocket hub and daemon component.

Wiring (the daemon does this)::

    picking = PickingService(store, cfg.layout_dict(), on_commit=uploader.notify)
    app = create_app(store, cfg, picking=picking)
    server = ApiServer(app, cfg)           # a Component named "api"
    app[HUB].deliver(notices)              # masterdata's task_cancel notices
"""

from edge.api.app import CONFIG, HUB, PICKING, STORE, ApiError, create_app
from edge.api.hub import PdaHub
from edge.api.server import ApiServer

__all__ = ["CONFIG", "HUB", "PICKING", "STORE", "ApiError", "ApiServer", "PdaHub", "create_app"]
