"""gpchannel.codec"""
