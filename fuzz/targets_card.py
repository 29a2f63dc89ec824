from fuzz.engine import Target

TARGETS: tuple[Target, ...] = ()
