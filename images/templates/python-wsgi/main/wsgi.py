"""The main app of the {{name}} plugin: Flask, run by gunicorn (see ../config.ini)."""
import os

from flask import Flask, request

app = Flask(__name__)


@app.route("/", defaults={"path": ""})
@app.route("/<path:path>")
def hello(path):
    return "Hello from {{name}} (Flask on gunicorn), worker %s, path %s\n" % (
        os.environ.get("MFSERV_CURRENT_APP_WORKER"),
        request.path,
    )
