"""Ray Serve apps (thin): import paths for the Serve YAML files in this folder."""
