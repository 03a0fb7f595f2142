"""The domain: a track's record and statuses, object keys, copyright verdicts, emails. Pure."""
