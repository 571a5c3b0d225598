"""The whole loop: serve -> generate -> train DPO -> evaluate -> report, for K self-evolution rounds."""
