"""gpchannel: GlobalPlatform secure channel protocols, a card emulator, a host tool and an OTA server."""

__version__ = "0.1.0"

__all__ = ["__version__"]
