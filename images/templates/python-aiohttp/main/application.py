"""The main app of the {{name}} plugin: aiohttp (see ../config.ini)."""
import os
import socket
import sys

from aiohttp import web


async def hello(request):
    return web.Response(
        text="Hello from {{name}} (aiohttp), worker %s, path %s\n"
        % (os.environ.get("MFSERV_CURRENT_APP_WORKER"), request.path)
    )


app = web.Application()
app.router.add_route("*", "/{tail:.*}", hello)

if os.environ.get("LISTEN_FDS") == "1" and os.environ.get("LISTEN_PID") == str(os.getpid()):
    # The socket mfserv created and passed as fd 3 (sd_listen_fds convention).
    web.run_app(app, sock=socket.socket(fileno=3), print=None, shutdown_timeout=10)
else:
    # MFSERV: the socket path is the first argument.
    web.run_app(app, path=sys.argv[1], print=None, shutdown_timeout=10)
