"""TRL's own checks on a pairs dataset: DPOTrainer reads it with no column mapping and takes a step."""

from __future__ import annotations


def dpo_one_step(dataset, model_path: str, output_dir: str) -> float:
    """Build TRL's DPOTrainer on ``dataset`` (a ``datasets.Dataset`` of pairs) and train one step; return the loss."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(output_dir=output_dir, bf16=False, report_to=[], max_steps=1, per_device_train_batch_size=2,
                     save_strategy="no", logging_steps=1)  # fmt: skip
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_path), args=args, train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(model_path),
    )  # fmt: skip
    return trainer.train().training_loss
