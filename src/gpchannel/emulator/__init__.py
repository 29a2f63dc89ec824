"""gpchannel.emulator"""
