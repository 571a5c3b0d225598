"""The simulated engine: Serve apps that behave like vLLM replicas on GPUs, with no model and no GPU.

``backend: sim`` (generation apps) and ``kind: sim`` (PRM apps) keep the schemas and handle API of the
real engines; one override (``sim:`` in the generation job's config, or
``load_serve_config(..., sim=...)``) switches a whole Serve YAML. Used to rehearse and measure cluster
behaviour (replicas, placement, routing, autoscaling, failures) on a machine without GPUs.

* :mod:`.calibration` — the timing model and its calibration table (sources, guesses marked);
* :mod:`.engine` — continuous batching in simulated time, a block-LRU prefix cache, :class:`SimEngine`;
* :mod:`.prm` — the simulated PRM;
* :mod:`.text` — deterministic step streams, per-problem difficulty, sum problems (:func:`sim_problems`).
"""
