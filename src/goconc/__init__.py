"""goconc: Go's concurrency model for Python threads and asyncio tasks."""
