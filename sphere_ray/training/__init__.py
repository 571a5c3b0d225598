"""DPO training: TRL DPOTrainer + PEFT LoRA on Ray Train, optionally under DeepSpeed ZeRO."""
