"""gpchannel.scp"""
