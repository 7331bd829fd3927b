"""An example service: domain modules the taskmill-supervisor daemon loads (see examples/taskmill.toml)."""
