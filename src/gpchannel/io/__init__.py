"""gpchannel.io"""
