"""Metrics: a typed snapshot, and Prometheus text for an app's /metrics route (docs/metrics.md)."""

import threading
import urllib.request
from typing import ClassVar
from wsgiref.simple_server import WSGIRequestHandler, make_server

import prometheus_client

import taskmill as tm

jobs = tm.Domain("jobs")


class Work(tm.Task, frozen=True):
    task_type: ClassVar[str] = "work"
    n: int


@jobs.executor(Work)
def work(task: Work, ctx: tm.TaskContext) -> None:
    if task.n % 5 == 0:
        raise tm.TaskError.permanent("multiples of five are not allowed")


def show_snapshot(scheduler: tm.Scheduler) -> None:
    snap = scheduler.metrics_snapshot()  # a msgspec Struct: msgspec.json.encode(snap) for a UI
    print(f"submitted {snap.submitted}, completed {snap.completed}, failed {snap.failed}, pending {snap.pending}")


class Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:  # no access log on stderr
        pass


def scrape_once(scheduler: tm.Scheduler) -> str:
    # This scheduler's own registry (never prometheus-client's global one), served by prometheus-client's WSGI app.
    app = prometheus_client.make_wsgi_app(scheduler.metrics_registry)
    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics").read().decode()
    finally:
        server.shutdown()


if __name__ == "__main__":
    scheduler = tm.Scheduler("tasks.db", domains=[jobs], workers=1, metrics_labels={"service": "thumbnailer"})
    with scheduler:
        scheduler.domain(jobs).submit_batch([Work(n=i) for i in range(1, 21)])
        scheduler.wait_until_idle(timeout=30)
        show_snapshot(scheduler)
        for line in scrape_once(scheduler).splitlines():
            if line.startswith("taskmill_tasks_completed_total"):
                print(line)
        assert scheduler.metrics_text().startswith(b"# HELP")  # the same text, for any web framework's route
