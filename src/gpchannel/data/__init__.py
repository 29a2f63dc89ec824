"""Files shipped with gpchannel: the example card profiles (profiles/*.toml, see gpchannel.cli.examples)."""
