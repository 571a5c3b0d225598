"""The generation job: the SPHERE search fanned out with Ray Data over the Serve apps, pairs to Parquet."""
