"""The cloud's REST API (aiohttp): one route table (routes.py) from which the
application and the OpenAPI document are both built, so neither can miss a route."""

from cloud.api.app import make_app

__all__ = ["make_app"]
