"""LTI 1.3 protocol: registrations, keys, launch validation, AGS. Knows nothing of proctoring."""
