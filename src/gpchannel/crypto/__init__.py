"""gpchannel.crypto"""
