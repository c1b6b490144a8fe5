// The main app of the {{name}} plugin: express (see ../config.ini).
const express = require("express");

const app = express();
app.use((req, res) => {
  res
    .type("text/plain")
    .send(`Hello from {{name}} (express on Node.js), worker ${process.env.MFSERV_CURRENT_APP_WORKER}, path ${req.path}\n`);
});

// mfserv passes the listening socket as fd 3 (LISTEN_FDS); MFSERV passed its path.
const passed = process.env.LISTEN_FDS === "1" && process.env.LISTEN_PID === String(process.pid);
const server = passed ? app.listen({ fd: 3 }) : app.listen(process.argv[2]);

process.on("SIGTERM", () => server.close(() => process.exit(0)));
