"""Feed formats, pure: the documents Amazon accepts and the reports it returns. No Dagster, no HTTP."""
