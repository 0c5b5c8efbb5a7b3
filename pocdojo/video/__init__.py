"""The yearly video: film plan, frames, PyAV encoding, joins, jobs."""
