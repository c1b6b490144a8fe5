import os

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.route("/", defaults={"path": ""})
@app.route("/<path:path>")
def hello(path):
    if request.args.get("format") == "json":
        return jsonify(
            app="hello_flask/main",
            worker=os.environ.get("MFSERV_CURRENT_APP_WORKER"),
            pid=os.getpid(),
            path=request.path,
            request_id=request.headers.get("X-Request-Id"),
        )
    return "Hello from hello_flask (Flask on gunicorn), worker %s, path %s\n" % (
        os.environ.get("MFSERV_CURRENT_APP_WORKER"),
        request.path,
    )
