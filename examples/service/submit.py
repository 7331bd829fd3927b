"""Submit to the running daemon from another process (a web app, a cron job) and watch the tasks finish.

    cd examples && taskmill-supervisor --config taskmill.toml --allow-root &   # --allow-root only if root
    python service/submit.py tasks.db

The client writes to the database and pings the daemon, which starts the tasks within milliseconds.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # make `service` importable

import taskmill as tm
from service.tasks import SendEmail, Thumbnail, mail, media


def main(db: str) -> int:
    with tm.connect(db) as client:
        ids = []
        for i in range(5):
            out = client.domain(media).submit(Thumbnail(path=f"/photos/{i}.jpg", width=320))
            ids.append(out.id)
        out = client.domain(mail).submit(
            SendEmail(to="ops@example.com", subject="thumbnails queued"), priority=tm.Priority.HIGH
        )
        ids.append(out.id)
        # Untyped, as `taskmill submit` does it: the payload is validated against the registered class.
        out = client.submit(tm.TaskSubmission(task_type="media::thumbnail", payload={"path": "/x.jpg", "width": 64}))
        ids.append(out.id)
        print("submitted", [i for i in ids if i is not None])
        deadline = time.monotonic() + 30
        while client.pending_count() + client.running_count() and time.monotonic() < deadline:
            time.sleep(0.1)
        for rec in client.history(limit=len(ids)):
            print(f"task {rec.task_id} {rec.task_type}: {rec.status} in {rec.duration or 0:.3f}s")
        return 0 if client.pending_count() + client.running_count() == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "tasks.db"))
