"""The seeded deterministic simulator (docs/simulator.md): the real services of several app instances
over one database, a controlled clock per instance, fake buyers, fault injection and invariant checks
after every step. `python -m tests.sim --help` runs it; `tests/sim/test_sim.py` runs a budget in CI."""
