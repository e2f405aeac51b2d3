"""Outbox job handlers that carry an attempt's results out: gradebook statuses and AI reports.

Above the domain (attempts/, identity), the protocol (lti/) and the service client (proctoring/);
registry.py maps each job kind to its handler for the worker.
"""
