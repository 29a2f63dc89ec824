"""The off-card entity: transports, secure sessions and GlobalPlatform commands built on the sans-I/O core."""
