"""Pure scheduling policy: functions of their inputs (and an injected clock/rng), no I/O."""
