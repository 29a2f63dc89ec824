"""`make bench`: every benchmark, each figure beside a baseline measured in the same process."""

from __future__ import annotations

import argparse

from bench import ota_packets, scp


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per figure")
    args = parser.parse_args()
    print("== secure messaging (sans-I/O core) ==")
    for line in scp.run(args.seconds):
        print(line.line())
    print("== SCP80 OTA packets (sans-I/O core) ==")
    for line in ota_packets.run(args.seconds):
        print(line.line())


if __name__ == "__main__":
    main()
