"""Serve app builders named by the YAML files here (``import_path: deployments.apps:...``)."""

from sphere_ray.serving.apps import generation_app, prm_app

__all__ = ["generation_app", "prm_app"]
