"""The training workers' plain progress line (a transformers callback; no model is needed to drive it)."""

import logging

from transformers import TrainerControl, TrainerState, TrainingArguments

from sphere_ray.training.worker import progress_callback


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_progress_line_per_logging_step_with_eta(tmp_path):
    lines = Lines()
    logging.getLogger("sphere_ray.training.progress").addHandler(lines)
    callback = progress_callback("DPO")
    args, control = TrainingArguments(output_dir=str(tmp_path), use_cpu=True), TrainerControl()
    state = TrainerState(max_steps=12, global_step=0)
    callback.on_train_begin(args, state, control)
    state.global_step, state.epoch = 6, 1.0
    callback.on_log(args, state, control, logs={"loss": 0.69314, "rewards/accuracies": 0.5, "grad_norm": 1.0})
    state.global_step = 12
    callback.on_log(args, state, control, logs={"eval_loss": 0.5})
    first, last = lines.lines
    assert first.startswith("DPO progress step 6/12 (epoch 1.00), loss 0.6931, rewards/accuracies 0.5, "), first
    assert "ETA" in first and "grad_norm" not in first
    assert last.startswith("DPO progress step 12/12") and last.endswith("done"), last
