"""Domain core for proctored attempts; no Flask, reaches the service only via a passed-in client."""
