"""Qwen2.5-Math-PRM architecture in plain transformers (no ``trust_remote_code``).

Weights are named as in the released checkpoints and in vLLM's ``Qwen2ForProcessRewardModel``:
``model.*`` (a Qwen2 decoder) and ``score.0``/``score.2`` (Linear(h, h) -> ReLU -> Linear(h, 2)).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Qwen2Config, Qwen2Model, Qwen2PreTrainedModel
from transformers.modeling_outputs import TokenClassifierOutput

__all__ = ["Qwen2ProcessRewardModel"]


class Qwen2ProcessRewardModel(Qwen2PreTrainedModel):
    """Token-level 2-class classifier over a Qwen2 decoder: logits of shape [batch, seq, 2]."""

    config_class = Qwen2Config

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__(config)
        self.model = Qwen2Model(config)
        h = config.hidden_size
        self.score = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 2))
        self.post_init()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: object
    ) -> TokenClassifierOutput:
        """Per-token class logits ``[batch, seq, 2]`` (index 1: the step is correct)."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return TokenClassifierOutput(logits=self.score(hidden))
