"""An application that uses the thumbs library (docs/domain-library.md): register its domain, configure it,
submit its tasks."""

from pathlib import Path

import thumbs

import taskmill as tm

if __name__ == "__main__":
    photos = Path("photos")
    photos.mkdir(exist_ok=True)
    for name in ("a.jpg", "b.jpg"):
        (photos / name).write_bytes(bytes(range(256)) * 40)

    scheduler = tm.Scheduler(
        "tasks.db",
        domains=[thumbs.domain],  # with the application's own domains
        app_state=[thumbs.Settings(quality=50, suffix="-small")],  # the library's settings
        workers=2,
    )
    with scheduler:
        h = scheduler.domain(thumbs.domain)
        h.set_max_concurrency(1)  # the application decides how much of the machine the library gets
        for p in sorted(photos.iterdir()):
            h.submit(thumbs.Resize(path=str(p.resolve()), width=128))
        scheduler.wait_until_idle()
        print([(r.task_type, r.status) for r in scheduler.history()])
    print(sorted(p.name for p in photos.iterdir()))
