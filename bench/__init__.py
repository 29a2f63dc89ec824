"""gpchannel benchmarks: `make bench` (python -m bench). Never run inside `make test`."""
