"""Pure logic of the generation job: the start-up ramp and its config check (no Ray, no models)."""

import pytest

from sphere_ray.generation.config import GenerateJobConfig
from sphere_ray.generation.worker import ramp_delay


def test_first_problems_start_spread_over_the_ramp_and_later_ones_at_once():
    delays = [ramp_delay(k, in_flight=4, ramp_up_s=8.0) for k in range(6)]
    assert delays == [0.0, 2.0, 4.0, 6.0, 0.0, 0.0]  # problems 4 and 5 arrive as earlier ones finish


def test_no_ramp_starts_everything_at_once():
    assert [ramp_delay(k, in_flight=4, ramp_up_s=0.0) for k in range(4)] == [0.0] * 4


def test_negative_ramp_is_rejected_naming_the_field():
    with pytest.raises(ValueError, match="ramp_up_s"):
        GenerateJobConfig(ramp_up_s=-1.0)
