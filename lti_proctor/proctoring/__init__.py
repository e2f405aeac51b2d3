"""The proctoring service's API (TrustExam external sessions, AI reports); no database access."""
