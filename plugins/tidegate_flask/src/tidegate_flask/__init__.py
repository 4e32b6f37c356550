"""Flask extension for tidegate.

::

    app = Flask(__name__)
    tidegate = Tidegate(app, "tidegate.yaml")     # surfaces under the config's prefix

    @app.post("/summary")
    def summary():
        answer = tidegate.chat([{"role": "user", "content": request.json["text"]}], model="light")
        return {"summary": answer["choices"][0]["message"]["content"]}

Serve with a threaded WSGI server (``waitress-serve --threads=16 app:app``). The Gateway runs on
one event-loop thread per process; WSGI threads cross into it and streams come back through a
bounded queue, so a slow client never makes the process buffer without limit. The config's
``protect:`` rules also guard the app's own routes (429/503 from tidegate, the slot held until the
response has been sent).
"""

from __future__ import annotations

from ._channel import Channel
from ._ext import Tidegate
from ._loop import LoopThread

__all__ = ["Channel", "LoopThread", "Tidegate"]
