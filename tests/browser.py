"""How the browser tests and the dashboard benchmark launch Debian's headless Chromium (no download).

The background-networking flags matter on machines with a closed network: without them Chromium keeps
opening connections that are refused.
"""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
