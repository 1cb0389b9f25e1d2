"""The staff pages and the browser code they share with the resident widget."""

from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
CHATKIT = STATIC / "chatkit.js"  # message rendering and reconnecting, shared by the agent page and the widget
