"""Dramatiq: the broker (Redis, or in-process when REDIS_URL is unset) and the actors.

`make worker` runs `dramatiq jobs.worker`; the web app sends jobs only after commit
(plugin.kit.after_commit) and, without Redis, runs a worker in its own process.
"""
