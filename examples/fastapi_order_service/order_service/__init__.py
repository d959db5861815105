"""A small order service on cqrs-ddd-persistence-sqlalchemy (FastAPI)."""

from order_service.api import create_app as create_app
from order_service.api import create_app_from_env as create_app_from_env
