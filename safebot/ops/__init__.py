"""Running SafeBot as a service: health and metrics, secrets, log format, database tools."""
