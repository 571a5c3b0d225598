"""sphere-ray: SPHERE preference-data generation (pruned MCTS) and DPO training on Ray."""
