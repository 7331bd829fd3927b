"""taskmill as a peer of the benchmark harness: task module, supervisor entry point and adapter."""
