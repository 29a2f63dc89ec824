"""gpchannel.cli"""
