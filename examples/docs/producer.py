"""Another process (a web app, a cron job): submits and queries; never runs tasks."""

import sys

from media_tasks import Resize, media

import taskmill as tm

with tm.connect(sys.argv[1]) as client:
    out = client.domain(media).submit(Resize(path="/uploads/cat.jpg", width=300))
    print("typed submit:", out.kind, out.id)
    # Untyped: by qualified type name, payload validated against the registered Resize class.
    sub = tm.TaskSubmission(task_type="media::resize", payload={"path": "/uploads/dog.jpg", "width": 640})
    out = client.submit(sub)
    print("untyped submit:", out.kind, out.id)
    try:
        bad = tm.TaskSubmission(task_type="media::resize", payload={"path": "/x.jpg", "width": "wide"})
        client.submit(bad)
    except tm.InvalidPayload as exc:
        print("rejected before writing:", exc)
