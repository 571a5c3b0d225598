"""SessionTable: sticky, load-bounded session assignment (the pure core of serving.router.AffinityRouter)."""

import hashlib
import random

import pytest

from sphere_ray.serving.router import SessionTable


class Clock:
    """A fake clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def ring(session: str, replicas: list[str]) -> list[str]:
    """A stand-in ring order: replicas sorted by a hash of (session, replica)."""
    return sorted(replicas, key=lambda r: hashlib.sha256(f"{session}:{r}".encode()).digest())


def test_sessions_stick_to_their_replica():
    table, replicas = SessionTable(), [f"r{i}" for i in range(4)]
    first = {f"s{i}": table.assign(f"s{i}", ring(f"s{i}", replicas)) for i in range(40)}
    for _ in range(3):
        for s, r in first.items():
            assert table.assign(s, ring(s, replicas)) == r


def test_load_factor_zero_balances_exactly_where_hashing_does_not():
    replicas = [f"r{i}" for i in range(32)]
    table = SessionTable(load_factor=0.0)
    for i in range(512):
        table.assign(f"p{i}", ring(f"p{i}", replicas))
    assert set(table.load.values()) == {16}
    hashed = [ring(f"p{i}", replicas)[0] for i in range(512)]  # plain hashing, for contrast
    assert max(hashed.count(r) for r in replicas) > 20


def test_load_factor_bounds_the_busiest_replica():
    replicas = [f"r{i}" for i in range(8)]
    table = SessionTable(load_factor=0.25)
    for i in range(200):
        table.assign(f"p{i}", ring(f"p{i}", replicas))
    assert max(table.load.values()) <= 32  # ceil(1.25 x 200 / 8)


def test_a_new_replica_takes_new_sessions_and_moves_no_old_one():
    table, replicas = SessionTable(), ["a", "b"]
    old = {f"s{i}": table.assign(f"s{i}", ring(f"s{i}", replicas)) for i in range(10)}
    replicas.append("c")
    new = [table.assign(f"n{i}", ring(f"n{i}", replicas)) for i in range(5)]
    assert new.count("c") == 5  # the empty replica fills first
    assert all(table.assign(s, ring(s, replicas)) == r for s, r in old.items())


def test_a_dead_replicas_sessions_move_and_loads_stay_right():
    table, replicas = SessionTable(), ["a", "b", "c"]
    for i in range(30):
        table.assign(f"s{i}", ring(f"s{i}", replicas))
    on_b = [f"s{i}" for i in range(30) if table.replica_of(f"s{i}") == "b"]
    alive = ["a", "c"]
    for s in on_b:
        assert table.assign(s, ring(s, alive)) in alive
    assert "b" not in table.load and sum(table.load.values()) == 30 == len(table)


def test_idle_sessions_expire_and_free_their_slot():
    clock = Clock()
    table = SessionTable(ttl_s=10, clock=clock)
    table.assign("old", ["a", "b"])
    clock.t = 11
    table.assign("new", ["a", "b"])
    assert len(table) == 1 and sum(table.load.values()) == 1


def test_random_churn_keeps_the_counts_consistent():
    rng, clock = random.Random(0), Clock()
    table, replicas = SessionTable(load_factor=0.1, ttl_s=5, clock=clock), [f"r{i}" for i in range(6)]
    for step in range(3000):
        clock.t += rng.random() * 0.05
        alive = [r for r in replicas if rng.random() > 0.05] or replicas
        s = f"s{rng.randrange(300)}"
        assert table.assign(s, ring(s, alive)) in alive
        if step % 100 == 0:
            assert sum(table.load.values()) == len(table)


@pytest.mark.parametrize("kwargs", [{"load_factor": -0.1}, {"ttl_s": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        SessionTable(**kwargs)
    with pytest.raises(ValueError, match="no replica"):
        SessionTable().assign("s", [])
