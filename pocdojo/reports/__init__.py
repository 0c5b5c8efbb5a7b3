"""Reports: dashboard figures from the rollups, export rows and writers, the export jobs."""
