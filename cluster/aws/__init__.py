"""AWS infrastructure of PoC Dojo as Python CDK (synthesised in-process, see ``app.py``)."""
