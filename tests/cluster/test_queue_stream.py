"""The streamed queue (``map_queue`` above ``stream_above``): one Ray Data block per staged part, spread
over the actor pool, each part's results back as soon as that part is done.

Regression: Ray 2.60's ``read_parquet`` read a whole small-file queue into ONE block, so one actor got
every problem and nothing came back until the end."""

import asyncio
import os
import sys
import time

import pyarrow as pa
from ray import cloudpickle

from sphere_ray.generation.config import GenerateJobConfig
from sphere_ray.generation.job import map_queue
from sphere_ray.generation.queue import Queue
from sphere_ray.generation.store import OutputStore, read_queue_part


class FakeRowWorker:
    """Fake (the small-queue path is not under test here)."""

    def __init__(self, **_: object) -> None:
        pass


class FakePartWorker:
    """Fake search actor: reads its parts like the real block worker and echoes who worked each problem."""

    def __init__(self, **_: object) -> None:
        self.pid = os.getpid()

    async def __call__(self, batch: pa.Table) -> pa.Table:
        rows = []
        for ref in batch.to_pylist():
            await asyncio.sleep(1.0)
            table = read_queue_part(ref["uri"], ref["part"])
            rows += [{"problem_id": i, "part": ref["part"], "pid": self.pid, "t": time.time()}
                     for i in table.column("id").to_pylist()]  # fmt: skip
        return pa.Table.from_pylist(rows)


def test_each_part_is_a_block_and_parts_spread_over_actors(ray_cluster, tmp_path):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the fakes travel to the actors by value
    store = OutputStore(str(tmp_path / "out"))
    (tmp_path / "out" / "queue").mkdir()
    parts = [store.write_queue_part(k, [{"id": f"p{k}-{i}", "problem": "1+1", "answer": "2", "source": "t"}
                                        for i in range(8)]) for k in range(4)]  # fmt: skip
    cfg = GenerateJobConfig(
        problems="unused.jsonl", output_dir=str(tmp_path / "out"), start_serve=False, num_actors=2,
        problems_in_flight=8, queue_part_rows=8, stream_above=0, actor_num_cpus=0.1,
    )  # fmt: skip
    queue = Queue(problems=32, parts=parts, todo=32)
    start = time.time()
    rows = list(map_queue(cfg, queue, store, (FakeRowWorker, FakePartWorker), {}).iter_rows())
    assert sorted(r["problem_id"] for r in rows) == sorted(f"p{k}-{i}" for k in range(4) for i in range(8))
    assert {r["part"] for r in rows} == set(parts)
    assert len({r["pid"] for r in rows}) == 2, "the parts went to one actor"
    assert max(r["t"] for r in rows) - start < 30
