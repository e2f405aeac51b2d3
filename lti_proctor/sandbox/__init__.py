"""Development stand-ins for an LMS and for the proctoring service (demo, end-to-end tests)."""
