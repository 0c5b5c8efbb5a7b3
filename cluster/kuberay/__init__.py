"""KubeRay manifests of PoC Dojo and their renderer (see render.py)."""
