"""The example FastAPI order service under uvicorn, for ``test_rel_fastapi_kills`` (a script).

    python rel_fastapi_server.py <database url> <schema> <application_name>

Serves ``examples/fastapi_order_service`` (its ``create_app``, tables created at start-up) on a
free port of 127.0.0.1 that it binds itself and prints as ``port <n>``. Its connections use
``schema`` and report ``application_name``, so the test can terminate exactly its backends.
SIGTERM / SIGINT stop it (uvicorn's graceful shutdown).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def _serve(url: str, schema: str, name: str) -> None:
    import uvicorn

    from cqrs_ddd_persistence_sqlalchemy import create_engine

    sys.path.insert(0, str(ROOT / "examples" / "fastapi_order_service"))
    from order_service import create_app

    settings = {"search_path": f"{schema}, public", "application_name": name}
    engine = create_engine(url, connect_args={"server_settings": settings})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # A long keep-alive: the client's pooled connections are never closed by the server for
    # idleness, so a connection closed under a request can only be the service's doing.
    config = uvicorn.Config(
        create_app(engine=engine), log_level="warning", timeout_keep_alive=120, lifespan="on"
    )
    server = uvicorn.Server(config)
    print(f"port {sock.getsockname()[1]}", flush=True)
    try:
        await server.serve(sockets=[sock])
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(_serve(*sys.argv[1:4]))
