"""Deployment topology shared by the AWS code, the Kubernetes manifests and their tests."""
