"""The daemon of the {{name}} plugin: replace the loop with real work (see config.ini)."""
import signal
import sys
import time

running = True


def stop(signum, frame):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
print("{{name}} daemon started", flush=True)
while running:
    time.sleep(1)
print("{{name}} daemon stopped", flush=True)
sys.exit(0)
