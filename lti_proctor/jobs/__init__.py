"""Durable outbox: jobs committed with the state change that causes them, run by workers."""
