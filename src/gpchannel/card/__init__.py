"""gpchannel.card"""
