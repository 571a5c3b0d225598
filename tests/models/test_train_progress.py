"""The training workers' plain progress line (a transformers callback; no model is needed to drive it)."""

from log_lines import captured
from transformers import TrainerControl, TrainerState, TrainingArguments

from sphere_ray.training.worker import progress_callback


def test_progress_line_per_logging_step_with_eta(tmp_path):
    with captured("sphere_ray.training.progress") as lines:
        callback = progress_callback("DPO")  # no board: the lines are logged in this process
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
