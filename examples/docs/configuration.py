"""The same scheduler configured from Python and from a TOML file (docs/configuration.md)."""

from pathlib import Path

from media_tasks import Resize, media

import taskmill as tm

CONFIG = """\
store = "tasks.db"
domains = ["media_tasks:media"]
workers = 2
durability = "normal"
timeout = 600

[retry]
strategy = "exponential"
max_retries = 5
delay = 1.0
max_delay = 300.0

[shutdown]
kind = "graceful"
timeout = 30

[retention]
keep_count = 500000
keep_days = 30

[group_concurrency]
uploads = 2

[rate_limits."media::resize"]
permits = 50
interval = 1
"""


def from_python() -> tm.Scheduler:
    return tm.Scheduler(
        "tasks.db",
        domains=[media],
        workers=2,
        durability="normal",
        retry=tm.RetryPolicy.exponential(5, base=1.0, max=300.0),
        shutdown=tm.ShutdownMode.graceful(30),
        retention=tm.RetentionPolicy(keep_count=500_000, keep_days=30),
        timeout=600,
        group_concurrency={"uploads": 2},
        rate_limits={"media::resize": tm.RateLimit.per_second(50)},
    )


def from_toml(path: str) -> tm.Scheduler:
    config = tm.load_config(path)  # unknown keys, wrong types and bad values raise tm.ConfigError
    return tm.Scheduler.from_config(config)


def describe(s: tm.Scheduler) -> tuple[object, ...]:
    """What the public API shows of the options set above."""
    view = s.policy_view()
    limits = [(r.scope, r.permits, r.interval) for r in view.rate_limits]
    return s.durability, s.max_concurrency, view.group_limits, limits


if __name__ == "__main__":
    Path("taskmill.toml").write_text(CONFIG)
    a, b = from_python(), from_toml("taskmill.toml")
    assert describe(a) == describe(b), (describe(a), describe(b))
    print("the Python and the TOML forms build the same scheduler:")
    print("  ", describe(a))
    a.close()

    try:  # a misspelt key stops the daemon with a message that names the key and the file
        Path("bad.toml").write_text('domains = ["media_tasks:media"]\nworkerz = 2\n')
        tm.load_config("bad.toml")
    except tm.ConfigError as exc:
        print("refused:", str(exc).split("/")[-1])

    with b:  # from_config gives an ordinary Scheduler
        b.domain(media).submit(Resize(path="/a.jpg", width=64))
        b.wait_until_idle()
    print("ran:", [r.status for r in b.history()])
